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

from marketflow.db import drop_database, init_database

ADMIN_URL = os.environ.get("MARKETFLOW_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_HOSTPORT = os.environ.get("MARKETFLOW_TEST_PG", "127.0.0.1:5432")


def _test_url(name: str, user: str = "marketflow") -> str:
    return f"postgresql://{user}@{PG_HOSTPORT}/{name}"


@pytest.fixture(scope="session")
def admin_url() -> str:
    return ADMIN_URL


@pytest.fixture(scope="session")
def database_url(admin_url: str) -> Iterator[str]:
    """A bootstrapped MarketFlow database shared by the whole session."""
    name = f"mf_test_{os.getpid()}"
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
        name = f"mf_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
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
