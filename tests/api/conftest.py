"""Fixtures for the API tests: a database of their own, the app connecting as `marketflow_api`.

The API tests empty `signals.daily_signals` before each test, so they get their own
bootstrapped database instead of the session's shared one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg2
import pytest
from flask import Flask
from flask.testing import FlaskClient

from api import create_app
from api.db import close_pool
from api.keys import create_key
from core.db import drop_database, init_database
from core.urls import database_name, with_database
from tests.api.api_test_helpers import (
    API_ROLE,
    SignalRow,
    as_role,
    free_port,
    insert_signals,
    keyed_client,
)


@pytest.fixture
def unused_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def api_owner_url(database_url: str, admin_url: str) -> Iterator[str]:
    """A bootstrapped database for the API tests, as its owner (the pipeline's role)."""
    url = with_database(database_url, database_name(database_url) + "_api")
    drop_database(admin_url, database_name(url))
    init_database(url, admin_url)
    yield url
    drop_database(admin_url, database_name(url))


@pytest.fixture(scope="session")
def api_database_url(api_owner_url: str) -> str:
    """The same database as `marketflow_api`, the read-only role the API runs as."""
    return as_role(api_owner_url, API_ROLE)


@pytest.fixture
def add_signals(api_owner_url: str) -> Callable[[list[SignalRow]], None]:
    """Empties signals.daily_signals; returns a function inserting rows as the owner."""
    with psycopg2.connect(api_owner_url) as conn, conn.cursor() as cur:
        cur.execute("truncate signals.daily_signals")
    conn.close()
    return lambda rows: insert_signals(api_owner_url, rows)


@pytest.fixture(scope="session")
def api_key(api_owner_url: str) -> str:
    """A valid key in the API tests' database (the CLI's code path: api.keys.create_key)."""
    _, token = create_key(api_owner_url, "tests")
    return token


# Tests see every write at once: no stamp or key is trusted from a previous request, unless a
# test asks for caching explicitly.
NO_CACHES = {"SIGNALS_CACHE_SECONDS": 0, "KEY_CACHE_SECONDS": 0, "CHAMPION_CHECK_SECONDS": 0}


@pytest.fixture
def make_app() -> Iterator[Callable[..., Flask]]:
    """Factory for test apps; closes their pooled connections afterwards."""
    apps: list[Flask] = []

    def _make(database_url: str, **config: Any) -> Flask:
        app = create_app({"TESTING": True, "DATABASE_URL": database_url, **NO_CACHES, **config})
        apps.append(app)
        return app

    yield _make
    for app in apps:
        close_pool(app)


@pytest.fixture
def app(make_app: Callable[..., Flask], api_database_url: str) -> Flask:
    return make_app(api_database_url)


@pytest.fixture
def client(app: Flask, api_key: str) -> FlaskClient:
    """A client sending a valid key with every request."""
    return keyed_client(app, api_key)
