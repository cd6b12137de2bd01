"""Fixtures for the ML tests: one real market database, built once, and a fresh MLflow namespace
per test.

The database holds the sample provider's prices for a few symbols over a few years, run through
the real dbt project, so `marts.features_daily` and `marts.labels_daily` are what training reads
in production. Each test that trains gets its own registered model name and experiment in the
session's MLflow store, so aliases and versions never leak from one test into another.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import date

import pytest

from marketflow.db import drop_database, init_database
from marketflow.settings import Settings

SYMBOLS = ["AAPL", "GOOG", "IBM", "MSFT"]
START, END = date(2008, 1, 1), date(2012, 12, 31)


@pytest.fixture(scope="session")
def market_url(admin_url: str) -> Iterator[str]:
    """Sample prices for SYMBOLS, START..END, with the dbt marts built on them."""
    from ingest.loader import ingest
    from marketflow.dbt import build

    name = f"mf_test_{os.getpid()}_ml_{uuid.uuid4().hex[:8]}"
    url = f"postgresql://marketflow@{os.environ.get('MARKETFLOW_TEST_PG', '127.0.0.1:5432')}/{name}"
    init_database(url, admin_url)
    try:
        batch = ingest(url, "sample", SYMBOLS, START, END)
        assert batch.rows_inserted > 0 and batch.rows_rejected == 0
        build(url)
        yield url
    finally:
        drop_database(admin_url, name)


@pytest.fixture(scope="session")
def market_symbols() -> list[str]:
    return list(SYMBOLS)


@pytest.fixture
def ml_settings(mlflow_store: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The session's MLflow store, under a model name and an experiment of this test's own."""
    unique = uuid.uuid4().hex[:8]
    for name, value in mlflow_store.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MARKETFLOW_MODEL_NAME", f"signal_{unique}")
    monkeypatch.setenv("MARKETFLOW_MLFLOW_EXPERIMENT", f"experiment_{unique}")
    return Settings()


@pytest.fixture
def mlflow_client(ml_settings: Settings):  # noqa: ANN201 - mlflow.MlflowClient
    from mlflow import MlflowClient

    uri = ml_settings.mlflow_tracking_uri
    return MlflowClient(tracking_uri=uri, registry_uri=uri)
