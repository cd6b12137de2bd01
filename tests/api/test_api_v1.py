"""The /api/v1 routes against a real PostgreSQL database, connecting as marketflow_api."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient

from api.keys import create_key
from tests.api.api_test_helpers import API_ROLE, as_role, keyed_client, signal_row

SIGNAL_FIELDS = {"trade_date", "symbol", "score", "rank", "signal", "model_name", "model_version"}
OLD_DAY, LATEST_DAY = date(2024, 3, 7), date(2024, 3, 8)

AddSignals = Callable[[list[dict]], None]


@pytest.fixture
def two_days(add_signals: AddSignals) -> None:
    """Yesterday's five rows, then today's five inserted out of rank order."""
    add_signals([signal_row(OLD_DAY, f"OLD{i}", i) for i in range(1, 6)])
    add_signals(
        [
            signal_row(LATEST_DAY, "MSFT", 3, score=0.1, signal="neutral"),
            signal_row(LATEST_DAY, "AAPL", 1, score=0.9, signal="long"),
            signal_row(LATEST_DAY, "TSLA", 5, score=-0.8, signal="short"),
            signal_row(LATEST_DAY, "NVDA", 2, score=0.7, signal="long"),
            signal_row(LATEST_DAY, "AMZN", 4, score=-0.2, signal="short"),
        ]
    )


def assert_json_error(response, status: int, error: str) -> dict:
    assert response.status_code == status
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error", "detail"}
    assert body["error"] == error
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def test_health_ok(client: FlaskClient) -> None:
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok"}


def test_health_is_503_json_when_database_is_down(
    make_app: Callable[..., Flask], unused_port: int
) -> None:
    app = make_app(f"postgresql://marketflow_api@127.0.0.1:{unused_port}/marketflow")
    response = app.test_client().get("/api/v1/health")
    assert response.status_code == 503
    assert response.mimetype == "application/json"
    assert response.get_json() == {
        "error": "service_unavailable",
        "detail": "database unreachable",
    }


def test_signals_are_503_json_when_database_is_down(
    make_app: Callable[..., Flask], unused_port: int, api_key: str
) -> None:
    app = make_app(f"postgresql://marketflow_api@127.0.0.1:{unused_port}/marketflow")
    response = keyed_client(app, api_key).get("/api/v1/signals/latest")
    body = assert_json_error(response, 503, "service_unavailable")
    assert body["detail"] == "database unreachable"


@pytest.mark.usefixtures("two_days")
def test_latest_returns_the_latest_date_ordered_by_rank(client: FlaskClient) -> None:
    response = client.get("/api/v1/signals/latest")

    assert response.status_code == 200
    body = response.get_json()
    assert list(body) == ["trade_date", "count", "signals"]
    assert body["trade_date"] == "2024-03-08"
    assert body["count"] == 5 == len(body["signals"])
    assert [s["symbol"] for s in body["signals"]] == ["AAPL", "NVDA", "MSFT", "AMZN", "TSLA"]
    assert [s["rank"] for s in body["signals"]] == [1, 2, 3, 4, 5]
    assert body["signals"][0] == {
        "trade_date": "2024-03-08",
        "symbol": "AAPL",
        "score": 0.9,
        "rank": 1,
        "signal": "long",
        "model_name": "lstm",
        "model_version": "3",
    }
    for item in body["signals"]:
        assert set(item) == SIGNAL_FIELDS
        assert item["trade_date"] == "2024-03-08"


@pytest.mark.usefixtures("two_days")
@pytest.mark.parametrize(
    ("query", "symbols"),
    [
        ("limit=2", ["AAPL", "NVDA"]),
        ("limit=1000", ["AAPL", "NVDA", "MSFT", "AMZN", "TSLA"]),
        ("signal=long", ["AAPL", "NVDA"]),
        ("signal=short", ["AMZN", "TSLA"]),
        ("signal=neutral", ["MSFT"]),
        ("signal=short&limit=1", ["AMZN"]),
    ],
)
def test_latest_filters(client: FlaskClient, query: str, symbols: list[str]) -> None:
    response = client.get(f"/api/v1/signals/latest?{query}")
    assert response.status_code == 200
    body = response.get_json()
    assert body["trade_date"] == "2024-03-08"
    assert [s["symbol"] for s in body["signals"]] == symbols
    assert body["count"] == len(symbols)


def test_latest_with_a_filter_matching_nothing_is_an_empty_list(
    client: FlaskClient, add_signals: AddSignals
) -> None:
    add_signals([signal_row(LATEST_DAY, "AAPL", 1, signal="long")])
    response = client.get("/api/v1/signals/latest?signal=short")
    assert response.status_code == 200
    assert response.get_json() == {"trade_date": "2024-03-08", "count": 0, "signals": []}


@pytest.mark.parametrize(
    "query",
    [
        "limit=abc",
        "limit=0",
        "limit=-1",
        "limit=1001",
        "limit=2.5",
        "limit=",
        "signal=foo",
        "signal=LONG",
        "signal=",
        "model=",
    ],
)
def test_latest_rejects_bad_parameters(client: FlaskClient, query: str) -> None:
    # No rows needed: parameters are checked before the database is asked.
    assert_json_error(client.get(f"/api/v1/signals/latest?{query}"), 400, "bad_request")


def test_a_backfilled_older_date_does_not_hide_the_latest(
    client: FlaskClient, add_signals: AddSignals
) -> None:
    add_signals([signal_row(LATEST_DAY, "AAPL", 1, created_at=datetime(2024, 3, 8, 18, 0))])
    # Re-scoring an old day later (a backfill) gives its rows a newer created_at.
    add_signals([signal_row(OLD_DAY, "MSFT", 1, created_at=datetime(2024, 3, 9, 9, 0))])
    body = client.get("/api/v1/signals/latest").get_json()
    assert body["trade_date"] == "2024-03-08"
    assert [s["symbol"] for s in body["signals"]] == ["AAPL"]


def test_latest_picks_the_most_recently_created_model_on_the_latest_date(
    client: FlaskClient, add_signals: AddSignals
) -> None:
    add_signals(
        [
            signal_row(LATEST_DAY, "AAPL", 1, model_name="xgb", model_version="7",
                       created_at=datetime(2024, 3, 8, 18, 0)),
            signal_row(LATEST_DAY, "MSFT", 2, model_name="xgb", model_version="7",
                       created_at=datetime(2024, 3, 8, 18, 0)),
            signal_row(LATEST_DAY, "MSFT", 1, model_name="lstm", model_version="4",
                       created_at=datetime(2024, 3, 8, 19, 30)),
            signal_row(LATEST_DAY, "AAPL", 2, model_name="lstm", model_version="4",
                       created_at=datetime(2024, 3, 8, 19, 30)),
        ]
    )  # fmt: skip

    default = client.get("/api/v1/signals/latest").get_json()
    assert {s["model_name"] for s in default["signals"]} == {"lstm"}
    assert [s["symbol"] for s in default["signals"]] == ["MSFT", "AAPL"]

    chosen = client.get("/api/v1/signals/latest?model=xgb").get_json()
    assert {(s["model_name"], s["model_version"]) for s in chosen["signals"]} == {("xgb", "7")}
    assert [s["symbol"] for s in chosen["signals"]] == ["AAPL", "MSFT"]


def test_model_parameter_gives_that_models_latest_date(
    client: FlaskClient, add_signals: AddSignals
) -> None:
    add_signals(
        [
            signal_row(OLD_DAY, "AAPL", 1, model_name="retired"),
            signal_row(LATEST_DAY, "AAPL", 1, model_name="lstm"),
        ]
    )
    body = client.get("/api/v1/signals/latest?model=retired").get_json()
    assert body["trade_date"] == "2024-03-07"
    assert [s["model_name"] for s in body["signals"]] == ["retired"]

    body = assert_json_error(client.get("/api/v1/signals/latest?model=nope"), 404, "not_found")
    assert "nope" in body["detail"]


def test_non_finite_scores_are_null_so_the_body_stays_json(
    client: FlaskClient, add_signals: AddSignals
) -> None:
    add_signals([signal_row(LATEST_DAY, "AAPL", 1, score=float("nan"))])
    response = client.get("/api/v1/signals/latest")
    assert b"NaN" not in response.data
    assert response.get_json()["signals"][0]["score"] is None


def test_latest_is_404_json_when_there_are_no_signals(
    make_app: Callable[..., Flask], make_database: Callable[[], str]
) -> None:
    owner_url = make_database()
    _, key = create_key(owner_url, "empty")
    app = make_app(as_role(owner_url, API_ROLE))
    response = keyed_client(app, key).get("/api/v1/signals/latest")
    body = assert_json_error(response, 404, "not_found")
    assert body["detail"] == "no signals yet"


@pytest.mark.parametrize("path", ["/api/v1/nope", "/nope", "/api/v2/signals/latest"])
def test_unknown_path_is_404_json(client: FlaskClient, path: str) -> None:
    assert_json_error(client.get(path), 404, "not_found")


@pytest.mark.parametrize("path", ["/api/v1/health", "/api/v1/signals/latest"])
def test_wrong_method_is_405_json(client: FlaskClient, path: str) -> None:
    response = client.post(path)
    assert_json_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]
