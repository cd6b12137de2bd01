"""Helpers shared by the API tests (a module of its own: conftest modules cannot be imported
reliably, they all import under the one name `conftest`)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg2
from flask import Flask
from flask.testing import FlaskClient

API_ROLE = "marketflow_api"

SignalRow = dict[str, Any]


def free_port() -> int:
    # The same as tests/conftest.py's, which cannot be imported from here.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_role(url: str, role: str) -> str:
    """`url` with its user replaced by `role` (trust auth: no password)."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{role}@{host}:{parts.port}" if parts.port else f"{role}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def signal_row(
    trade_date: date,
    symbol: str,
    rank: int,
    *,
    score: float | None = None,
    signal: str = "neutral",
    model_name: str = "lstm",
    model_version: str = "3",
    created_at: datetime | None = None,
) -> SignalRow:
    return {
        "trade_date": trade_date,
        "symbol": symbol,
        "score": score if score is not None else 1.0 / rank,
        "rank": rank,
        "signal": signal,
        "model_name": model_name,
        "model_version": model_version,
        "mlflow_run_id": f"run-{model_name}-{model_version}",
        "created_at": created_at or datetime(2024, 1, 1, 18, 0),
    }


def insert_signals(owner_url: str, rows: list[SignalRow]) -> None:
    with psycopg2.connect(owner_url) as conn, conn.cursor() as cur:
        cur.executemany(
            """
            insert into signals.daily_signals
                (trade_date, symbol, score, rank, signal, model_name, model_version,
                 mlflow_run_id, created_at)
            values
                (%(trade_date)s, %(symbol)s, %(score)s, %(rank)s, %(signal)s, %(model_name)s,
                 %(model_version)s, %(mlflow_run_id)s, %(created_at)s)
            """,
            rows,
        )
    conn.close()


def keyed_client(app: Flask, key: str) -> FlaskClient:
    """A test client sending `Authorization: Bearer <key>` with every request."""
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return client


FIXTURE_MODEL = Path(__file__).with_name("fixture_model.py")


# A stand-in for a training run's tear sheet (ml/evaluation/tearsheet.py writes the real one).
TEAR_SHEET = (
    b"<!DOCTYPE html><html><head><title>ridge tear sheet</title></head><body>"
    b"<h1 id='sheet'>ridge</h1></body></html>"
)


def register_model(
    tracking_uri: str,
    artifact_dir: Path,
    model_name: str,
    *,
    weights: list[float],
    features: list[str],
    lookback: int = 1,
    tags: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    equity_curve: bytes | None = None,
    tear_sheet: bytes | None = None,
    champion: bool = True,
    database_url: str | None = None,
) -> str:
    """Log and register tests/api/fixture_model.py; returns the new version (made @champion)."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri, tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    experiment = client.get_experiment_by_name(model_name)
    experiment_id = (
        experiment.experiment_id
        if experiment
        else client.create_experiment(model_name, artifact_location=artifact_dir.as_uri())
    )
    with mlflow.start_run(experiment_id=experiment_id) as run:
        if params:
            mlflow.log_params(params)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(FIXTURE_MODEL),
            model_config={"features": features, "weights": weights, "lookback": lookback},
            registered_model_name=model_name,
            # Given, not inferred: inferring them imports and probes the environment (slow).
            pip_requirements=["mlflow", "pandas", "numpy"],
        )
        if equity_curve is not None:
            local = artifact_dir / f"upload_{run.info.run_id}"
            local.mkdir(parents=True)
            (local / "equity_curve.png").write_bytes(equity_curve)
            mlflow.log_artifact(str(local / "equity_curve.png"), "plots")
        if tear_sheet is not None:
            local = artifact_dir / f"upload_sheet_{run.info.run_id}"
            local.mkdir(parents=True)
            (local / "tearsheet.html").write_bytes(tear_sheet)
            mlflow.log_artifact(str(local / "tearsheet.html"),
                                f"tearsheets/{(tags or {})['model']}")  # fmt: skip
    version = str(info.registered_model_version)
    all_tags = {"features": ",".join(features), "lookback": str(lookback), **(tags or {})}
    for key, value in all_tags.items():
        client.set_model_version_tag(model_name, version, key, value)
    if champion:
        promote_version(tracking_uri, database_url, model_name, version)
    return version


def promote_version(
    tracking_uri: str, database_url: str | None, model_name: str, version: str
) -> None:
    """Make `version` @champion the way the promotion gate does: its artifact digest recorded
    in `database_url` first (the API refuses to load a champion without it)."""
    import mlflow
    from mlflow import MlflowClient

    from ml.registry.gate import promote

    if database_url is None:
        raise ValueError("a champion needs the database its promotion is recorded in")
    mlflow.set_tracking_uri(tracking_uri)
    promote(MlflowClient(tracking_uri, tracking_uri), model_name, version, database_url)


def tiny_png(width: int = 120, height: int = 60) -> bytes:
    """A real PNG (a rising line on white), so a browser has something to draw."""
    import struct
    import zlib

    rows = []
    for y in range(height):
        row = bytearray([0])  # filter byte
        for x in range(width):
            on_line = abs((height - 1 - y) - x * (height - 1) // (width - 1)) <= 1
            row += bytes((20, 90, 200) if on_line else (255, 255, 255))
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )


DEMO_FEATURES = ["ret_1d", "vol_20d"]


def seed_demo(
    owner_url: str,
    tracking_uri: str,
    artifact_dir: Path,
    model_name: str,
    n_symbols: int = 20,
    n_days: int = 5,
    *,
    reports_dir: Path,
) -> dict[str, Any]:
    """Signals, features, a drift run with live quality, and a registered champion with an
    equity curve: what the pages, schemathesis and the benchmark read."""
    import uuid

    from psycopg2.extras import execute_values

    symbols = [f"S{i:03d}" for i in range(n_symbols)]
    days = [date(2024, 3, 4 + i) for i in range(n_days)]
    features = [
        (s, d, (i + 1) * 0.001 * (k + 1), 0.01 * (i % 7 + 1))
        for i, s in enumerate(symbols)
        for k, d in enumerate(days)
    ]
    run_id = str(uuid.uuid4())
    report = reports_dir / f"drift_{days[-1]}_v1.html"  # the API serves only this folder
    reports_dir.mkdir(parents=True, exist_ok=True)
    artifact_dir.mkdir(parents=True, exist_ok=True)
    # A real report (our summary, then Evidently's detail) of the seeded features: the first
    # days against the last ones.
    import pandas as pd

    from ml.monitoring.drift import compute_drift

    frame = pd.DataFrame(features, columns=["symbol", "trade_date", "ret_1d", "vol_20d"])
    split = frame["trade_date"] >= days[len(days) // 2]
    compute_drift(frame[~split], frame[split], ["ret_1d", "vol_20d"], report)
    with psycopg2.connect(owner_url) as conn, conn.cursor() as cur:
        cur.execute("truncate signals.daily_signals, monitoring.drift_runs cascade")
        cur.execute("truncate monitoring.live_quality")
        cur.execute("drop table if exists marts.features_daily")
        cur.execute(
            "create table marts.features_daily (symbol text, trade_date date, ret_1d float8,"
            " vol_20d float8, primary key (symbol, trade_date))"
        )
        execute_values(cur, "insert into marts.features_daily values %s", features)
        rows = []
        for d in days:
            for rank, s in enumerate(symbols, start=1):
                side = (
                    "long"
                    if rank <= n_symbols // 3
                    else "short"
                    if rank > n_symbols - n_symbols // 3
                    else "neutral"
                )
                rows.append((d, s, 1.0 - rank / n_symbols, rank, side, model_name, "1", "run"))
        execute_values(
            cur,
            "insert into signals.daily_signals (trade_date, symbol, score, rank, signal,"
            " model_name, model_version, mlflow_run_id) values %s",
            rows,
        )
        cur.execute(
            """
            insert into monitoring.drift_runs (run_id, run_date, reference_start, reference_end,
                current_start, current_end, n_features, n_drifted_features, share_drifted,
                drift_detected, report_path, model_name, model_version, mlflow_run_id)
            values (%s, %s, '2020-01-01', '2023-12-29', %s, %s, 2, 1, 0.5, true, %s, %s, '1', 'r')
            """,
            (run_id, days[-1], days[0], days[-1], str(report), model_name),
        )
        execute_values(
            cur,
            "insert into monitoring.drift_features values %s",
            [(run_id, "ret_1d", True, 0.01, "K-S p_value", 0.05),
             (run_id, "vol_20d", False, 0.4, "K-S p_value", 0.05)],
        )  # fmt: skip
        cur.execute(
            "insert into monitoring.live_quality (run_date, model_name, model_version, label,"
            " window_start, window_end, n_days, ic, hit_rate, top_k, top_k_return)"
            " values (%s, %s, '1', 'fwd_ret_1d', %s, %s, 5, 0.031, 0.54, 10, 0.0012)",
            (days[-1], model_name, days[0], days[-1]),
        )
    conn.close()
    version = register_model(
        tracking_uri,
        artifact_dir,
        model_name,
        weights=[1.0, -0.5],
        features=DEMO_FEATURES,
        tags={
            "model": "ridge",
            "train_start": "2020-01-01",
            "train_end": "2023-12-29",
            "metric.ic": "0.042",
            "metric.sharpe": "1.3",
        },
        equity_curve=tiny_png(),
        tear_sheet=TEAR_SHEET,
        database_url=owner_url,
    )
    return {"symbols": symbols, "days": days, "version": version, "drift_run_id": run_id}


# The real app under gunicorn (api/gunicorn.conf.py), for tests and fault drills.
REPO_ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).with_name("gunicorn")
STARTUP_TIMEOUT_S = 15


def get_json(url: str, key: str | None = None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=5
        ) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def wait_for_health(base: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        assert server.poll() is None, f"gunicorn exited early:\n{log.read_text()}"
        try:
            if get_json(f"{base}/api/v1/health") == (200, {"status": "ok", "database": "ok"}):
                return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"no healthy answer within {STARTUP_TIMEOUT_S}s:\n{log.read_text()}")


@contextmanager
def gunicorn(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """`gunicorn -c api/gunicorn.conf.py` under `env`, healthy on MARKETFLOW_API_BIND before
    the body runs; on the way out SIGTERM, then SIGKILL after 15 s (which fails the test)."""
    with log.open("w") as log_file:
        server = subprocess.Popen(
            [str(GUNICORN), "-c", "api/gunicorn.conf.py"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_health(f"http://{env['MARKETFLOW_API_BIND']}", server, log)
            yield server
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
                raise
