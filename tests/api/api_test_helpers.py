"""Helpers shared by the API tests (a module of its own: conftest modules cannot be imported
reliably, they all import under the one name `conftest`)."""

from __future__ import annotations

import socket
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
    champion: bool = True,
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
    version = str(info.registered_model_version)
    all_tags = {"features": ",".join(features), "lookback": str(lookback), **(tags or {})}
    for key, value in all_tags.items():
        client.set_model_version_tag(model_name, version, key, value)
    if champion:
        client.set_registered_model_alias(model_name, "champion", version)
    return version
