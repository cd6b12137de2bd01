"""api/errors.py: unexpected errors and query timeouts still answer JSON."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import date

import psycopg2
import pytest
from flask import Flask

from api.errors import error_response
from tests.api.api_test_helpers import keyed_client, signal_row


def test_unexpected_error_is_500_json_without_the_traceback(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    def explode() -> str:
        raise RuntimeError("secret internals")

    app.add_url_rule("/api/v1/explode", view_func=explode)

    with caplog.at_level(logging.ERROR):
        response = app.test_client().get("/api/v1/explode")

    assert response.status_code == 500
    assert response.mimetype == "application/json"
    assert response.get_json() == {
        "error": "internal_server_error",
        "detail": "an unexpected error occurred",
    }
    assert b"secret" not in response.data and b"Traceback" not in response.data
    logged = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert [str(exc) for exc in logged] == ["secret internals"]


def test_a_query_past_statement_timeout_is_503_json(
    make_app: Callable[..., Flask],
    api_database_url: str,
    api_owner_url: str,
    add_signals: Callable[[list[dict]], None],
    api_key: str,
) -> None:
    add_signals([signal_row(date(2024, 3, 8), "AAPL", 1)])
    app = make_app(api_database_url, DATABASE_STATEMENT_TIMEOUT_MS=200)
    client = keyed_client(app, api_key)
    assert client.get("/api/v1/health").status_code == 200  # the key is checked before the lock

    # The owner holds an exclusive lock, so the API's select waits until its timeout.
    locker = psycopg2.connect(api_owner_url)
    try:
        with locker.cursor() as cur:
            cur.execute("lock table signals.daily_signals in access exclusive mode")
        result: dict = {}
        worker = threading.Thread(
            target=lambda: result.update(response=client.get("/api/v1/signals/latest"))
        )
        worker.start()
        worker.join(timeout=10)
        assert not worker.is_alive(), "statement_timeout did not cancel the query"
    finally:
        locker.rollback()
        locker.close()

    response = result["response"]
    assert response.status_code == 503
    assert response.get_json() == {
        "error": "service_unavailable",
        "detail": "database query timed out",
    }
    # The cancelled query leaves a usable connection behind.
    assert client.get("/api/v1/signals/latest").status_code == 200


def test_error_response_shape(app: Flask) -> None:
    with app.app_context():
        response = error_response(418, "teapot", "short and stout")
    assert response.status_code == 418
    assert response.get_json() == {"error": "teapot", "detail": "short and stout"}
