"""The model card and on-demand scoring, against a real MLflow store (PostgreSQL backend) and
real features in PostgreSQL; the champion alias moving while requests are in flight."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import psycopg2
import pytest
from flask import Flask
from flask.testing import FlaskClient
from psycopg2.extras import execute_values

from tests.api.api_test_helpers import (
    TEAR_SHEET,
    free_port,
    keyed_client,
    promote_version,
    register_model,
)

FEATURES = ["ret_1d", "vol_20d"]
SYMBOLS = ["AAPL", "MSFT", "NVDA"]
DAYS = [date(2024, 3, 1) + timedelta(days=i) for i in range(10)]
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def feature_value(symbol: str, day_index: int, feature: str) -> float:
    return (SYMBOLS.index(symbol) + 1) * 0.01 * (day_index + 1) * (1 if feature == "ret_1d" else 2)


@pytest.fixture(scope="module")
def features_table(api_owner_url: str) -> Iterator[None]:
    rows = [
        (s, d, *(feature_value(s, i, f) for f in FEATURES))
        for s in SYMBOLS
        for i, d in enumerate(DAYS)
    ]
    with psycopg2.connect(api_owner_url) as conn, conn.cursor() as cur:
        cur.execute("drop table if exists marts.features_daily")
        cur.execute(
            "create table marts.features_daily (symbol text, trade_date date, ret_1d float8,"
            " vol_20d float8, primary key (symbol, trade_date))"
        )
        execute_values(cur, "insert into marts.features_daily values %s", rows)
    conn.close()
    yield
    with psycopg2.connect(api_owner_url) as conn, conn.cursor() as cur:
        cur.execute("drop table if exists marts.features_daily")
    conn.close()


@pytest.fixture
def registry(mlflow_store: dict[str, str], tmp_path: Path, api_owner_url: str) -> dict[str, Any]:
    return {
        "db": api_owner_url,
        "uri": mlflow_store["MLFLOW_TRACKING_URI"],
        "artifacts": tmp_path / "artifacts",
        "name": f"api_model_{uuid.uuid4().hex[:8]}",
        "data_dir": tmp_path / "data",
    }


@pytest.fixture
def scoring_client(
    make_app: Callable[..., Flask],
    api_database_url: str,
    api_key: str,
    registry: dict[str, Any],
    features_table: None,
) -> FlaskClient:
    app = make_app(
        api_database_url,
        MLFLOW_TRACKING_URI=registry["uri"],
        MODEL_NAME=registry["name"],
        DATA_DIR=str(registry["data_dir"]),
        MLFLOW_UI_URL="http://mlflow.example",
    )
    return keyed_client(app, api_key)


def register(registry: dict[str, Any], weights: list[float], **kwargs: Any) -> str:
    registry["artifacts"].mkdir(parents=True, exist_ok=True)
    return register_model(
        registry["uri"],
        registry["artifacts"],
        registry["name"],
        weights=weights,
        features=FEATURES,
        database_url=registry["db"],
        **kwargs,
    )


def expected_score(symbol: str, weights: list[float], lookback: int = 1) -> float:
    last = len(DAYS) - 1
    per_day = [
        sum(w * feature_value(symbol, i, f) for w, f in zip(weights, FEATURES, strict=True))
        for i in range(last - lookback + 1, last + 1)
    ]
    return sum(per_day) / lookback


def test_no_champion_is_404_card_and_503_score(scoring_client: FlaskClient) -> None:
    response = scoring_client.get("/api/v1/models/champion")
    assert response.status_code == 404 and response.get_json()["error"] == "not_found"
    response = scoring_client.post("/api/v1/score", json={"symbols": ["AAPL"]})
    assert response.status_code == 503
    assert response.get_json()["detail"] == "no champion model to score with"


def test_model_card_shows_the_tags_that_exist(
    scoring_client: FlaskClient, registry: dict[str, Any]
) -> None:
    # A version with a few metric tags and its window as run params only (older training).
    version = register(
        registry,
        [1.0, 0.0],
        tags={"metric.ic": "0.031", "metric.rmse": "0.02", "model": "ridge"},
        params={"train_start": "2010-01-04", "train_end": "2012-12-31"},
    )
    card = scoring_client.get("/api/v1/models/champion").get_json()
    assert card["name"] == registry["name"] and card["version"] == version
    assert card["model"] == "ridge"
    assert card["metrics"] == {"ic": 0.031, "rmse": 0.02}
    assert card["trained_window"] == {"start": "2010-01-04", "end": "2012-12-31"}
    assert card["test_window"] == {"start": None, "end": None}
    assert card["features"] == FEATURES and card["lookback"] == 1
    assert card["mlflow_run_url"].startswith("http://mlflow.example/#/experiments/")
    assert card["mlflow_run_url"].endswith(f"/runs/{card['run_id']}")
    assert card["equity_curve_url"] is None
    assert scoring_client.get("/api/v1/models/champion/equity_curve.png").status_code == 404
    assert card["tear_sheet_url"] is None
    missing = scoring_client.get("/api/v1/models/champion/tear_sheet.html")
    assert missing.status_code == 404 and missing.is_json


def test_model_card_with_the_full_contract_and_equity_curve(
    scoring_client: FlaskClient, registry: dict[str, Any]
) -> None:
    tags = {
        "model": "lstm",
        "label": "fwd_ret_5d",
        "label_horizon": "5",
        "train_start": "2015-01-02",
        "train_end": "2020-12-31",
        "test_start": "2021-01-15",
        "test_end": "2022-12-30",
        "metric.ic": "0.05",
        "metric.sharpe": "1.4",
        "metric.max_drawdown": "-0.2",
    }
    register(registry, [1.0, 1.0], tags=tags, params={"train_start": "1999-01-01"},
             equity_curve=PNG, tear_sheet=TEAR_SHEET)  # fmt: skip
    card = scoring_client.get("/api/v1/models/champion").get_json()
    assert card["label"] == "fwd_ret_5d" and card["label_horizon"] == 5
    assert card["trained_window"] == {"start": "2015-01-02", "end": "2020-12-31"}  # tag wins
    assert card["test_window"] == {"start": "2021-01-15", "end": "2022-12-30"}
    assert card["metrics"] == {"ic": 0.05, "sharpe": 1.4, "max_drawdown": -0.2}
    assert card["equity_curve_url"] == "/api/v1/models/champion/equity_curve.png"
    response = scoring_client.get(card["equity_curve_url"])
    assert response.status_code == 200 and response.mimetype == "image/png"
    assert response.data == PNG
    cached = registry["data_dir"] / "api_cache" / registry["name"] / card["version"] / "plots"
    assert (cached / "equity_curve.png").read_bytes() == PNG
    # The tear sheet of the card's model, as a static page that may run nothing.
    assert card["tear_sheet_url"] == "/api/v1/models/champion/tear_sheet.html"
    sheet = scoring_client.get(card["tear_sheet_url"])
    assert sheet.status_code == 200 and sheet.mimetype == "text/html"
    assert sheet.data == TEAR_SHEET
    assert "default-src 'none'" in sheet.headers["Content-Security-Policy"]


def test_score_returns_the_champions_scores_on_the_latest_date(
    scoring_client: FlaskClient, registry: dict[str, Any]
) -> None:
    version = register(registry, [2.0, -1.0], lookback=3)
    response = scoring_client.post("/api/v1/score", json={"symbols": ["NVDA", "AAPL", "ZZZZ"]})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["model_name"] == registry["name"] and body["model_version"] == version
    assert body["trade_date"] == DAYS[-1].isoformat()
    assert [s["symbol"] for s in body["scores"]] == ["NVDA", "AAPL"]
    for item in body["scores"]:
        assert item["score"] == pytest.approx(expected_score(item["symbol"], [2.0, -1.0], 3))
    assert body["unscored_symbols"] == ["ZZZZ"]
    # Any case: symbols are stored upper-case.
    lower = scoring_client.post("/api/v1/score", json={"symbols": ["nvda", "Aapl", "zzzz"]})
    assert lower.status_code == 200 and lower.get_json() == body

    response = scoring_client.post("/api/v1/score", json={"symbols": ["ZZZZ"]})
    assert response.status_code == 404 and "ZZZZ" in response.get_json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        {},
        {"symbols": []},
        {"symbols": "AAPL"},
        {"symbols": [1]},
        {"symbols": ["AA PL"]},
        {"symbols": ["AAPL"], "extra": 1},
        {"symbols": ["X"] * 101},
    ],
)
def test_score_rejects_bad_bodies(scoring_client: FlaskClient, body: Any) -> None:
    response = scoring_client.post("/api/v1/score", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"] == "bad_request"


def test_score_rejects_a_non_json_body(scoring_client: FlaskClient) -> None:
    response = scoring_client.post("/api/v1/score", data="symbols=AAPL")
    assert response.status_code == 400


def test_registry_down_is_503_json(
    make_app: Callable[..., Flask], api_database_url: str, api_key: str, unused_port: int
) -> None:
    app = make_app(
        api_database_url,
        MLFLOW_TRACKING_URI=f"http://127.0.0.1:{unused_port}",
    )
    client = keyed_client(app, api_key)
    response = client.get("/api/v1/models/champion")
    assert response.status_code == 503, response.get_json()
    assert response.get_json() == {
        "error": "service_unavailable",
        "detail": "model registry unreachable",
    }


def test_the_alias_moving_while_requests_are_in_flight(
    make_app: Callable[..., Flask],
    api_database_url: str,
    api_key: str,
    registry: dict[str, Any],
    features_table: None,
) -> None:

    old = register(registry, [1.0, 0.0])
    new = register(registry, [0.0, 1.0], champion=False)
    app = make_app(
        api_database_url,
        MLFLOW_TRACKING_URI=registry["uri"],
        MODEL_NAME=registry["name"],
        CHAMPION_CHECK_SECONDS=0.2,
    )
    client = keyed_client(app, api_key)
    expected = {
        old: expected_score("MSFT", [1.0, 0.0]),
        new: expected_score("MSFT", [0.0, 1.0]),
    }
    assert client.post("/api/v1/score", json={"symbols": ["MSFT"]}).status_code == 200

    seen: list[tuple[int, str | None, float | None]] = []
    spans: list[tuple[float, float, str | None]] = []  # each request's start, end, version
    stop = threading.Event()

    def hammer() -> None:
        own = keyed_client(app, api_key)
        while not stop.is_set():
            started = time.monotonic()
            response = own.post("/api/v1/score", json={"symbols": ["MSFT"]})
            body = response.get_json()
            if response.status_code != 200:
                seen.append((response.status_code, None, None))
                continue
            seen.append((200, body["model_version"], body["scores"][0]["score"]))
            spans.append((started, time.monotonic(), body["model_version"]))

    workers = [threading.Thread(target=hammer) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        time.sleep(0.5)
        promote_version(registry["uri"], registry["db"], registry["name"], new)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(v == new for _, v, _ in seen[-5:]):
            time.sleep(0.1)
        time.sleep(0.3)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=30)

    assert {status for status, _, _ in seen} == {200}
    versions = [version for _, version, _ in seen]
    assert old in versions and new in versions
    # Every answer is one model's, whole: never the new version with the old scores.
    for _, version, score in seen:
        assert score == pytest.approx(expected[version])  # type: ignore[index]
    # Once the new model has answered, no request that starts later gets the old one. (By
    # start time: answers arrive out of order, so a request begun before the switch may
    # end after any number of new ones.)
    switched = min(end for _, end, version in spans if version == new)
    assert {version for start, _, version in spans if start > switched} == {new}


def test_a_champion_whose_artifacts_changed_after_promotion_is_refused_and_the_old_one_serves(
    scoring_client: FlaskClient,
    registry: dict[str, Any],
    make_app: Callable[..., Flask],
    api_database_url: str,
    api_key: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from mlflow import MlflowClient

    old = register(registry, [1.0, 0.0])
    first = scoring_client.post("/api/v1/score", json={"symbols": ["AAPL"]})
    assert first.status_code == 200 and first.get_json()["model_version"] == old

    # A new version goes through the gate (its digest recorded), then a file of its artifacts
    # is swapped in the store: what an attacker with write access to MLflow would do.
    new = register(registry, [5.0, 0.0], champion=False)
    promote_version(registry["uri"], registry["db"], registry["name"], new)
    client = MlflowClient(registry["uri"], registry["uri"])
    root = Path(urlparse(client.get_model_version_download_uri(registry["name"], new)).path)
    target = root / "MLmodel"
    target.write_text(target.read_text() + "\n# swapped\n")

    with caplog.at_level("ERROR", logger="api.champion"):
        after = scoring_client.post("/api/v1/score", json={"symbols": ["AAPL"]})
    assert after.status_code == 200 and after.get_json()["model_version"] == old
    assert f"v{new}: its artifacts hash to" in caplog.text
    assert "recorded at promotion" in caplog.text

    # A worker that had no champion loaded yet serves none, and says why.
    fresh = keyed_client(
        make_app(api_database_url, MLFLOW_TRACKING_URI=registry["uri"],
                 MODEL_NAME=registry["name"], DATA_DIR=str(registry["data_dir"])),
        api_key,
    )  # fmt: skip
    refused = fresh.post("/api/v1/score", json={"symbols": ["AAPL"]})
    assert refused.status_code == 503 and refused.is_json
    assert "refusing to load them" in refused.get_json()["detail"]


def test_a_champion_the_gate_never_promoted_is_not_loaded(
    scoring_client: FlaskClient, registry: dict[str, Any]
) -> None:
    from mlflow import MlflowClient

    version = register(registry, [1.0, 0.0], champion=False)
    MlflowClient(registry["uri"], registry["uri"]).set_registered_model_alias(
        registry["name"], "champion", version
    )
    response = scoring_client.post("/api/v1/score", json={"symbols": ["AAPL"]})
    assert response.status_code == 503
    assert "the promotion gate never promoted it" in response.get_json()["detail"]


def test_oversized_and_deeply_nested_bodies_get_4xx_json(scoring_client: FlaskClient) -> None:
    big = scoring_client.post("/api/v1/score", json={"symbols": ["AAPL"] * 20_000})
    assert big.status_code == 413 and big.is_json
    deep = "[" * 5000 + "]" * 5000
    nested = scoring_client.post("/api/v1/score", data='{"symbols": ' + deep + "}",
                                 content_type="application/json")  # fmt: skip
    assert nested.status_code == 400 and nested.is_json


def test_a_drift_report_outside_the_reports_folder_is_not_served(
    scoring_client: FlaskClient, api_owner_url: str, registry: dict[str, Any]
) -> None:
    run_id = str(uuid.uuid4())
    inside = registry["data_dir"] / "reports" / "drift_ok.html"
    inside.parent.mkdir(parents=True, exist_ok=True)
    inside.write_text("<html>report</html>")
    runs = {run_id: "/etc/passwd", str(uuid.uuid4()): str(inside.parent / ".." / ".." / "x"),
            (ok := str(uuid.uuid4())): str(inside)}  # fmt: skip
    with psycopg2.connect(api_owner_url) as conn, conn.cursor() as cur:
        for rid, path in runs.items():
            cur.execute(
                """insert into monitoring.drift_runs (run_id, run_date, reference_start,
                reference_end, current_start, current_end, n_features, n_drifted_features,
                share_drifted, drift_detected, report_path) values (%s, '2024-01-02',
                '2023-01-02', '2023-12-29', '2024-01-02', '2024-01-02', 1, 0, 0, false, %s)""",
                (rid, path),
            )
    conn.close()
    for rid in runs:
        response = scoring_client.get(f"/api/v1/drift/{rid}/report")
        if rid == ok:
            assert response.status_code == 200 and b"report" in response.data
        else:
            assert response.status_code == 404 and response.is_json
            assert b"root:" not in response.data


def test_with_the_registry_down_the_loaded_champion_and_its_card_keep_serving(
    scoring_client: FlaskClient, registry: dict[str, Any], make_app: Callable[..., Flask],
    api_database_url: str, api_key: str,
) -> None:  # fmt: skip
    from mlflow import MlflowClient

    from api.champion import _KEY

    version = register(registry, [1.0, 0.0])
    assert scoring_client.post("/api/v1/score", json={"symbols": ["AAPL"]}).status_code == 200
    card = scoring_client.get("/api/v1/models/champion").get_json()
    assert card["version"] == version and card["registry_reachable"] is True

    # The registry goes away: a client of a tracking server on a port nobody listens on.
    dead = f"http://127.0.0.1:{free_port()}"
    scoring_client.application.extensions[_KEY]._client = MlflowClient(dead, dead)
    for _ in range(3):
        started = time.monotonic()
        scored = scoring_client.post("/api/v1/score", json={"symbols": ["AAPL"]})
        assert scored.status_code == 200 and scored.get_json()["model_version"] == version
        assert time.monotonic() - started < 2
    card = scoring_client.get("/api/v1/models/champion")
    assert card.status_code == 200
    assert card.get_json()["version"] == version and card.get_json()["registry_reachable"] is False

    # A worker that never loaded a champion has nothing to serve: 503 JSON, at once.
    fresh_app = make_app(api_database_url, MLFLOW_TRACKING_URI=dead, MODEL_NAME=registry["name"],
                         DATA_DIR=str(registry["data_dir"]))  # fmt: skip
    fresh = keyed_client(fresh_app, api_key)
    started = time.monotonic()
    down = fresh.post("/api/v1/score", json={"symbols": ["AAPL"]})
    assert down.status_code == 503 and down.get_json()["detail"] == "model registry unreachable"
    assert time.monotonic() - started < 2
