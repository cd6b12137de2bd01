"""The page at `/`: off unless the deployment turns it on, cached, rate-limited per address."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest
from flask import Flask

from tests.api.api_test_helpers import keyed_client, signal_row

DAY = date(2024, 3, 8)


@pytest.fixture
def signals(add_signals: Callable) -> Callable:
    add_signals([signal_row(DAY, "AAPL", 1, signal="long")])
    return add_signals


def test_the_page_is_off_by_default_and_says_how_to_turn_it_on(
    make_app: Callable[..., Flask], api_database_url: str, api_key: str, signals: Callable
) -> None:
    app = make_app(api_database_url)
    assert app.config["PUBLIC_PAGE"] is False
    anonymous = app.test_client()
    for path in ("/", "/equity_curve.png", "/tear_sheet.html"):
        response = anonymous.get(path)
        assert response.status_code == 404 and response.is_json, path
        assert "MARKETFLOW_API_PUBLIC_PAGE" in response.get_json()["detail"]
    assert keyed_client(app, api_key).get("/api/v1/signals/latest").status_code == 200


def test_anonymous_readers_are_rate_limited_and_keyed_clients_are_not(
    make_app: Callable[..., Flask], api_database_url: str, api_key: str, signals: Callable
) -> None:
    app = make_app(api_database_url, PUBLIC_PAGE=True, PAGE_RATE_LIMIT="3/minute")
    anonymous = app.test_client()
    assert [anonymous.get("/").status_code for _ in range(3)] == [200, 200, 200]
    limited = anonymous.get("/")
    assert limited.status_code == 429 and limited.is_json
    assert limited.get_json()["error"] == "too_many_requests"
    other = app.test_client()  # another address is counted apart
    assert other.get("/", environ_base={"REMOTE_ADDR": "10.0.0.9"}).status_code == 200
    keyed = keyed_client(app, api_key)
    assert all(keyed.get("/api/v1/signals/latest").status_code == 200 for _ in range(10))


def test_the_rendered_page_is_reused_for_the_cache_time(
    make_app: Callable[..., Flask], api_database_url: str, signals: Callable
) -> None:
    cached = make_app(api_database_url, PUBLIC_PAGE=True, SIGNALS_CACHE_SECONDS=60).test_client()
    fresh = make_app(api_database_url, PUBLIC_PAGE=True, SIGNALS_CACHE_SECONDS=0).test_client()
    assert "NVDA" not in cached.get("/").get_data(as_text=True)
    assert "NVDA" not in fresh.get("/").get_data(as_text=True)

    signals([signal_row(DAY, "NVDA", 2, signal="long")])

    assert "NVDA" not in cached.get("/").get_data(as_text=True)  # within its minute
    assert "NVDA" in fresh.get("/").get_data(as_text=True)
