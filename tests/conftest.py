"""Shared fixtures: every test session gets its own PostgreSQL databases on the local server.

Never the demo's `marketflow` database: names start with `mf_test_` and carry the pid, so a
running demo and parallel test runs never collide.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator

import pytest

ADMIN_URL = os.environ.get("MARKETFLOW_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_HOSTPORT = os.environ.get("MARKETFLOW_TEST_PG", "127.0.0.1:5432")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST_ID = f"mf_test_{os.getpid()}"

# Airflow reads its configuration once, at first import: point it at this session's own
# home and metadata database before any test module imports it.
os.environ["AIRFLOW_HOME"] = os.path.join("/tmp", f"{TEST_ID}_airflow_home")
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = (
    f"postgresql+psycopg2://marketflow@{PG_HOSTPORT}/{TEST_ID}_airflow"
)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = os.path.join(REPO_ROOT, "dags")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__COSMOS__ENABLE_TELEMETRY"] = "False"
os.environ["AIRFLOW__CORE__EXECUTOR"] = "LocalExecutor"
os.environ["AIRFLOW__CORE__PARALLELISM"] = "2"
os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "INFO"
# dbt's manifest and partial-parse state per session, never the shared dbt/target.
os.environ["MARKETFLOW_DBT_TARGET_PATH"] = os.path.join("/tmp", f"{TEST_ID}_dbt", "target")
os.environ.pop("MARKETFLOW_DATABASE_URL", None)
os.environ.pop("MLFLOW_TRACKING_URI", None)

from core.db import drop_database, init_database  # noqa: E402


def _test_url(name: str, user: str = "marketflow") -> str:
    return f"postgresql://{user}@{PG_HOSTPORT}/{name}"


@pytest.fixture(scope="session")
def admin_url() -> str:
    return ADMIN_URL


@pytest.fixture(scope="session")
def database_url(admin_url: str) -> Iterator[str]:
    """A bootstrapped MarketFlow database shared by the whole session."""
    name = TEST_ID
    url = _test_url(name)
    drop_database(admin_url, name)
    init_database(url, admin_url)
    yield url
    drop_database(admin_url, name)


@pytest.fixture
def make_database(admin_url: str) -> Iterator[Callable[[], str]]:
    """Factory for throw-away bootstrapped databases, dropped after the test."""
    created: list[str] = []

    def _make() -> str:
        name = f"{TEST_ID}_{uuid.uuid4().hex[:8]}"
        init_database(_test_url(name), admin_url)
        created.append(name)
        return _test_url(name)

    yield _make
    for name in created:
        drop_database(admin_url, name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def mlflow_store(
    admin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """A real MLflow tracking store (PostgreSQL backend, local artifact folder), no server."""
    from core.db import ensure_database

    name = f"{TEST_ID}_mlflow"
    drop_database(admin_url, name)
    ensure_database(admin_url, name, "marketflow")
    data_dir = tmp_path_factory.mktemp("mf_data")
    yield {
        "MLFLOW_TRACKING_URI": f"postgresql+psycopg2://marketflow@{PG_HOSTPORT}/{name}",
        "MARKETFLOW_DATA_DIR": str(data_dir),
    }
    drop_database(admin_url, name)


MARKET_SYMBOLS = ["AAPL", "GOOG", "IBM", "MSFT"]


@pytest.fixture(scope="session")
def market_url(admin_url: str) -> Iterator[str]:
    """The sample provider's prices for MARKET_SYMBOLS, 2008-2012, run through the real dbt
    project, so `marts.features_daily` and `marts.labels_daily` are what training reads in
    production. Built once per session."""
    from datetime import date

    from core.dbt import build
    from ingest.loader import ingest

    name = f"{TEST_ID}_ml_{uuid.uuid4().hex[:8]}"
    url = _test_url(name)
    init_database(url, admin_url)
    try:
        batch = ingest(url, "sample", MARKET_SYMBOLS, date(2008, 1, 1), date(2012, 12, 31))
        assert batch.rows_inserted > 0 and batch.rows_rejected == 0
        build(url)
        yield url
    finally:
        drop_database(admin_url, name)


@pytest.fixture(scope="session")
def market_symbols() -> list[str]:
    return list(MARKET_SYMBOLS)
