"""The database terminates the API's connections again and again while clients keep asking:
no request hangs, each answers 200 or a 503 JSON, and the API serves normally afterwards."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg2

from core.urls import database_name
from tests.api.api_test_helpers import (
    get_json,
    gunicorn,
)
from tests.faults.drill_api import drill_api

LOAD_S = 6.0


def _terminate_api_backends(admin_url: str, database: str, stop: threading.Event) -> int:
    killed = 0
    conn = psycopg2.connect(admin_url)
    conn.autocommit = True
    try:
        while not stop.is_set():
            with conn.cursor() as cur:
                cur.execute(
                    """
                    select count(*) filter (where pg_terminate_backend(pid)) from pg_stat_activity
                    where datname = %s and application_name = 'marketflow-api'
                    """,
                    (database,),
                )
                killed += cur.fetchone()[0]
            time.sleep(0.15)
    finally:
        conn.close()
    return killed


def test_connections_terminated_under_load_never_hang_a_request(
    make_database, admin_url: str, tmp_path: Path
) -> None:
    owner = make_database()
    key, port, env = drill_api(owner)
    latest = f"http://127.0.0.1:{port}/api/v1/signals/latest"
    results: list[tuple[int, str, float]] = []

    def client() -> None:
        deadline = time.monotonic() + LOAD_S
        while time.monotonic() < deadline:
            start = time.monotonic()
            status, body = get_json(latest, key)  # a 5 s socket timeout: a hang fails
            results.append((status, body.get("error", ""), time.monotonic() - start))

    with gunicorn(env, tmp_path / "gunicorn.log"):
        stop = threading.Event()
        with ThreadPoolExecutor(5) as pool:
            killer = pool.submit(_terminate_api_backends, admin_url, database_name(owner), stop)
            clients = [pool.submit(client) for _ in range(4)]
            for done in clients:
                done.result()
            stop.set()
            killed = killer.result()

        assert killed >= 10, f"the drill terminated only {killed} connections"
        assert len(results) > 50
        statuses = {(status, error) for status, error, _ in results}
        assert statuses <= {(200, ""), (503, "service_unavailable")}, statuses
        assert max(seconds for *_, seconds in results) < 2.0
        # Most requests still succeed: a broken pooled connection is replaced within the request.
        ok = sum(status == 200 for status, *_ in results)
        assert ok / len(results) > 0.8, (ok, len(results))

        for _ in range(10):  # afterwards: every request served
            status, body = get_json(latest, key)
            assert status == 200 and body["count"] == 1
