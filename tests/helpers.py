"""Small helpers shared by test modules (imported as `tests.helpers`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg2
import pytest

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
# Debian's `chromium` (CI installs it), driven by Playwright: what a person's browser shows.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (Debian package `chromium`)"
)


def query(url: str, sql: str, params: Any = None) -> list[tuple]:
    """All rows of one statement (none for a statement without a result), committed, on a
    connection of its own."""
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        rows = cur.fetchall() if cur.description else []
    conn.close()
    return rows


def asset_events(asset_name: str) -> int:
    """Asset events recorded so far in this session's Airflow metadata database."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        return session.scalar(
            select(func.count())
            .select_from(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name == asset_name)
        )


def wait_for(predicate: Callable[[], Any], what: str, timeout: float, every: float = 1.0) -> Any:
    """Poll `predicate` every `every` seconds until it returns something true (returned), or
    fail the test after `timeout` seconds naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def airflow_cli(env: dict[str, str], *args: str) -> str:
    """`airflow ARGS` with `env` (a test stack's, from marketflow.services.airflow_env); its
    stdout. A failure fails the test with the command's output."""
    done = subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"airflow {args}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    return done.stdout


@contextmanager
def own_airflow(
    settings: Any, admin_url: str, wanted: Callable[[str], bool] = lambda name: True
) -> Iterator[tuple[dict[str, str], str, list[Any]]]:
    """(env, metadata database URL, services) of an Airflow of the test's own: its metadata
    database (`settings.services.airflow_database`) created and migrated, the local stack's
    Airflow services whose name `wanted` accepts, not started; after the block they are
    stopped and the database dropped. The drills that kill a scheduler or run a backfill
    start it themselves."""
    from core.db import drop_database, ensure_database
    from marketflow.services import airflow_env, services, stop_all

    database = settings.services.airflow_database
    ensure_database(admin_url, database, "marketflow")
    env = {**os.environ, **airflow_env(settings)}
    url = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("+psycopg2", "")
    stack = [s for s in services(settings) if s.name.startswith("airflow-") and wanted(s.name)]
    try:
        airflow_cli(env, "db", "migrate")
        yield env, url, stack
    finally:
        stop_all(settings, echo=lambda _: None, stack=stack, timeout=10)
        drop_database(admin_url, database)


@contextmanager
def chromium(profile: Path) -> Iterator[Any]:
    """A headless Chromium (a Playwright browser context) with its profile in `profile`."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield context
        finally:
            context.close()
