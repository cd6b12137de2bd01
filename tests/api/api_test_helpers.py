"""Helpers shared by the API tests (a module of its own: conftest modules cannot be imported
reliably, they all import under the one name `conftest`)."""

from __future__ import annotations

import socket
from datetime import date, datetime
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
