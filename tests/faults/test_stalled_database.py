"""A database that accepts connections and answers nothing (its server frozen with SIGSTOP)
costs each API request at most ~2 s and a 503 JSON, never a gunicorn worker; the API serves
again as soon as the database does."""

from __future__ import annotations

import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from api.db import STALL_BACKOFF_S
from core.db import init_database
from tests.api.api_test_helpers import (
    get_json,
    gunicorn,
)
from tests.faults.drill_api import drill_api
from tests.faults.own_postgres import OwnPostgres, own_postgres

DEADLINE_S = 2.0


@pytest.fixture
def server() -> OwnPostgres:
    with own_postgres() as pg:
        yield pg


def _children(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()}


def _timed(url: str, key: str) -> tuple[int, dict, float]:
    start = time.monotonic()
    status, body = get_json(url, key)
    return status, body, time.monotonic() - start


def test_a_stalled_database_costs_a_request_2s_and_a_503_never_a_worker(
    server: OwnPostgres, tmp_path: Path
) -> None:
    owner = server.url("marketflow_faults")
    init_database(owner, server.admin_url)
    key, port, env = drill_api(owner)
    base = f"http://127.0.0.1:{port}"
    latest = f"{base}/api/v1/signals/latest"
    with gunicorn(env, tmp_path / "gunicorn.log") as master:
        with ThreadPoolExecutor(8) as pool:  # both workers hold pooled connections now
            assert {s for s, _, _ in pool.map(lambda _: _timed(latest, key), range(16))} == {200}
        workers = _children(master.pid)
        assert len(workers) == 2

        server.stall()
        try:
            with ThreadPoolExecutor(8) as pool:
                stalled = list(pool.map(lambda _: _timed(latest, key), range(8)))
            health = _timed(f"{base}/api/v1/health", key)
        finally:
            server.resume()
            thawed = time.monotonic()

        for status, body, seconds in [*stalled, health]:
            assert status == 503, body
            assert body["error"] == "service_unavailable"
            assert body["detail"] in ("database did not answer in time", "database unreachable")
            assert seconds < DEADLINE_S, f"a request waited {seconds:.2f} s for a frozen database"
        # Each worker took ~1.75 s per queued request, not the 30 s gunicorn timeout: same pids.
        assert _children(master.pid) == workers

        # The server thaws: once each worker's back-off is over, it asks again and serves.
        time.sleep(max(0.0, thawed + STALL_BACKOFF_S - time.monotonic()) + 0.2)
        for _ in range(10):
            status, body, _ = _timed(latest, key)
            assert (status, body.get("count")) == (200, 1), body
        with urllib.request.urlopen(f"{base}/api/v1/health", timeout=5) as response:
            assert response.status == 200
        assert _children(master.pid) == workers
