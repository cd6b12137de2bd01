"""features_daily built in symbol slices (dbt/macros/build_in_slices.sql) against real
PostgreSQL and real dbt, on the sample data (5 symbols, 12k bars):

- a full build in 3 slices equals the single statement of a 1-slice build row for row, value
  for value (not within a tolerance: each symbol's windows run the same SQL on the same rows);
- a rebuild from an early day runs in slices too, stays incremental (its pre-hook records
  the first rebuilt day), and equals the full build;
- no slice table is left behind.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import psycopg2
import pytest

from core.db import drop_database, init_database
from core.dbt import run_dbt
from core.urls import database_name, with_database
from ingest.loader import load_prices as ingest_prices
from ingest.providers.sample import SampleProvider

EARLY_CUTOFF = date(2004, 6, 30)  # the rebuild rewrites every day after it: most of the rows


def new_database(admin_url: str, database_url: str, label: str) -> str:
    url = with_database(database_url, f"mf_test_{os.getpid()}_{label}_{uuid.uuid4().hex[:6]}")
    init_database(url, admin_url)
    return url


def load_sample(url: str, start: date | None = None, end: date | None = None) -> None:
    ingest_prices(url, SampleProvider().fetch(start=start, end=end), "sample")


def build_features(url: str, slices: int, *extra: str) -> str:
    """`dbt run` of features_daily and its parents with `slices` slices; returns what the
    build logged about its slices (from a log folder of its own: dbt rotates its log)."""
    with pytest.MonkeyPatch.context() as patch, tempfile.TemporaryDirectory() as logs:
        patch.setenv("MARKETFLOW_DBT_FEATURE_SLICES", str(slices))
        patch.setenv("MARKETFLOW_DBT_LOG_PATH", logs)
        run_dbt(["run", "--select", "+features_daily", *extra], url)
        with (Path(logs) / "dbt.log").open() as lines:
            return "\n".join(line for line in lines if "per-symbol rows in" in line)


def query(url: str, sql: str) -> tuple[list[str], list[tuple]]:
    """Column names and rows of one statement (none for a statement that returns none)."""
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(sql)
        columns = [column.name for column in cur.description or []]
        rows = cur.fetchall() if cur.description else []
    conn.close()
    return columns, rows


def read_features(url: str) -> pd.DataFrame:
    columns, rows = query(url, "select * from marts.features_daily order by symbol, trade_date")
    return pd.DataFrame(rows, columns=columns).drop(columns="source_ingested_at")


def leftover_tables(url: str) -> list[str]:
    _, rows = query(url, "select tablename from pg_tables where tablename like '%dbt_slice%'")
    return [name for (name,) in rows]


@pytest.fixture(scope="module")
def serial_url(admin_url: str, database_url: str) -> Iterator[str]:
    """The sample data built by the single statement (one slice)."""
    url = new_database(admin_url, database_url, "serial")
    try:
        load_sample(url)
        assert build_features(url, 1) == ""
        yield url
    finally:
        drop_database(admin_url, database_name(url))


def test_a_full_build_in_slices_equals_the_single_statement_row_for_row(serial_url: str) -> None:
    _, [(serial,)] = query(serial_url, "select count(*) from marts.features_daily")
    query(serial_url, "create table public.serial_features as select * from marts.features_daily")
    try:
        logged = build_features(serial_url, 3, "--full-refresh")
        assert "per-symbol rows in 3 slices" in logged
        _, [differences] = query(
            serial_url,
            "select"
            " (select count(*) from (select * from marts.features_daily"
            "  except all select * from public.serial_features) as extra) as extra,"
            " (select count(*) from (select * from public.serial_features"
            "  except all select * from marts.features_daily) as missing) as missing,"
            " (select count(*) from marts.features_daily) as n",
        )
        assert differences == (0, 0, serial)
        assert leftover_tables(serial_url) == []
    finally:
        query(serial_url, "drop table public.serial_features")


def test_a_rebuild_from_an_early_day_runs_in_slices_and_equals_the_full_build(
    admin_url: str, database_url: str, serial_url: str
) -> None:
    url = new_database(admin_url, database_url, "rebuild")
    try:
        load_sample(url, end=EARLY_CUTOFF)
        build_features(url, 3)
        load_sample(url, start=EARLY_CUTOFF + timedelta(days=1))
        logged = build_features(url, 3, "--vars", "{feature_slice_min_rows: 1000}")

        assert "per-symbol rows in 3 slices" in logged
        _, rebuilds = query(
            url,
            "select rebuilt_from from monitoring.dbt_rebuilds"
            " where model_name = 'features_daily' order by started_at",
        )
        # The first build was a full one; the second an incremental one from the new days.
        assert [day for (day,) in rebuilds] == [None, rebuilds[-1][0]]
        assert rebuilds[-1][0] > EARLY_CUTOFF
        pd.testing.assert_frame_equal(read_features(url), read_features(serial_url))
        assert leftover_tables(url) == []
    finally:
        drop_database(admin_url, database_name(url))


RUN_START_LOCK = 727401  # dbt/macros/run_start_lock.sql


def test_concurrent_dbt_invocations_take_turns_through_the_run_start_hooks(
    admin_url: str, database_url: str
) -> None:
    import threading
    import time

    url = new_database(admin_url, database_url, "runstart")
    try:
        holder = psycopg2.connect(url)
        holder.autocommit = True
        holder.cursor().execute("select pg_advisory_lock(%s)", (RUN_START_LOCK,))
        errors: list[BaseException] = []

        def build() -> None:
            try:
                run_dbt(["run", "--select", "stg_market__prices"], url)
            except BaseException as exc:  # reported below
                errors.append(exc)

        worker = threading.Thread(target=build)
        worker.start()
        waited = False
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not waited:
            # dbt's connection waits on the lock the test holds, before any shared object.
            _, rows = query(url, "select count(*) from pg_locks where locktype = 'advisory'"
                                 f" and objid = {RUN_START_LOCK} and not granted")  # fmt: skip
            waited = rows[0][0] == 1
            time.sleep(0.2)
        assert waited and worker.is_alive()
        _, rows = query(url, "select count(*) from information_schema.tables"
                             " where table_schema = 'monitoring' and table_name = 'dbt_rebuilds'")  # fmt: skip
        assert rows == [(0,)]  # the hooks behind the lock have not run

        holder.cursor().execute("select pg_advisory_unlock(%s)", (RUN_START_LOCK,))
        worker.join(timeout=120)
        assert not worker.is_alive() and errors == []
        _, rows = query(url, "select count(*) from pg_locks where locktype = 'advisory'")
        assert rows == [(0,)]  # released by the last hook
        holder.close()
    finally:
        drop_database(admin_url, database_name(url))
