"""`airflow backfill create` of the ingest DAG, run by the real scheduler: one DAG run per
business day, several at once, yet ONE raw_prices event for the whole backfill, from the last
load (dags/ingest_dag.py `announce`), so the features DAG builds once instead of once a day.

The scheduler, dag-processor and api-server are the local stack's (`marketflow up`), on a
metadata database and port of the test's own; the provider is the Connection
`marketflow_provider` (a csv folder) and the symbols a universe file, as in production."""

from __future__ import annotations

import json
import os
import time
from datetime import date, timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from core.settings import get_settings
from core.urls import database_name
from marketflow.services import start_all
from tests.api.api_test_helpers import free_port
from tests.helpers import airflow_cli, own_airflow, query

pytestmark = pytest.mark.e2e

# Mon Jan 8 to Thu Jan 18: nine cron ticks (the to-date, Jan 19 00:00, ends before Friday's
# 22:00 tick). TEST_BACKFILL_TO=2025-01-08 runs the year the issue names (~250
# runs; about ten minutes here, so not in `make test`).
FROM = date(2024, 1, 8)
TO = date.fromisoformat(os.environ.get("TEST_BACKFILL_TO") or "2024-01-19")
TICKS = [FROM + timedelta(days=i) for i in range((TO - FROM).days) if (FROM + timedelta(days=i)).weekday() < 5]  # fmt: skip

DAG = "marketflow_ingest"
HEADER = "Date,Open,High,Low,Close,Adj Close,Volume\n"
DOWNSTREAM = ("marketflow_features", "marketflow_training", "marketflow_scoring",
              "marketflow_monitoring", "marketflow_quality_sweep")  # fmt: skip


def test_a_backfill_of_many_runs_emits_raw_prices_once_from_its_last_load(
    make_database, admin_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = make_database()
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    # From Jan 1 to the last run's day.
    days = [date(2024, 1, 1) + timedelta(days=i) for i in range((TICKS[-1] - date(2024, 1, 1)).days + 1)]  # fmt: skip
    rows = "".join(f"{d},10,15,9,{10 + d.day / 10},{10 + d.day / 10},1000\n" for d in days
                   if d.weekday() < 5)  # fmt: skip
    for symbol in ("AAA", "BBB"):
        (vendor / f"{symbol}.csv").write_text(HEADER + rows)
    universe = tmp_path / "universe.csv"
    universe.write_text("symbol\nAAA\nBBB\n")
    airflow_db = database_name(url) + "_airflow"
    monkeypatch.setenv("MARKETFLOW_DATABASE_URL", url)
    monkeypatch.setenv("MARKETFLOW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MARKETFLOW_AIRFLOW_PORT", str(free_port()))
    monkeypatch.setenv("MARKETFLOW_AIRFLOW_DATABASE", airflow_db)
    monkeypatch.setenv("MARKETFLOW_INGEST_DATA_ROOTS", json.dumps([str(tmp_path)]))
    monkeypatch.setenv("MARKETFLOW_UNIVERSE", str(universe))
    monkeypatch.setenv(
        "AIRFLOW_CONN_MARKETFLOW_PROVIDER",
        json.dumps({"conn_type": "generic", "extra": {"provider": "csv", "path": str(vendor)}}),
    )
    settings = get_settings()
    with own_airflow(settings, admin_url) as (env, airflow_url, stack):
        airflow_cli(env, "dags", "reserialize")
        for downstream in DOWNSTREAM:  # the test counts events; it does not build features
            airflow_cli(env, "dags", "pause", downstream)
        start_all(settings, echo=lambda _: None, stack=stack)
        airflow_cli(env, "dags", "unpause", DAG)
        airflow_cli(env, "backfill", "create", "--dag-id", DAG, "--from-date", str(FROM),
                 "--to-date", str(TO), "--max-active-runs", "3")  # fmt: skip
        backfill_runs = "select count(*), count(*) filter (where state in ('success', 'failed'))" \
                        " from dag_run where dag_id = %s and run_type = 'backfill'"  # fmt: skip
        deadline = time.monotonic() + 900 + 5 * len(TICKS)
        while time.monotonic() < deadline:
            [(total, ended)] = query(airflow_url, backfill_runs, (DAG,))
            if total and total == ended:
                break
            time.sleep(2)
        else:
            raise AssertionError(f"backfill not done in time: {ended} of {total} runs ended")
        tasks = query(airflow_url, "select r.run_type, r.logical_date, t.task_id, t.state,"
                      " t.end_date from task_instance t join dag_run r using (dag_id, run_id)"
                      " where t.dag_id = %s order by 2, 3", (DAG,))  # fmt: skip
        spans = query(airflow_url, "select start_date, end_date from dag_run where dag_id = %s"
                      " and run_type = 'backfill' order by start_date", (DAG,))  # fmt: skip
        events = query(airflow_url, "select e.timestamp, e.source_run_id from asset_event e"
                       " join asset a on a.id = e.asset_id where a.name = 'raw_prices'")  # fmt: skip

    # One run per cron tick (22:00, Mon-Fri) of the range, every load succeeded...
    loads = [t for t in tasks if t[0] == "backfill" and t[2] == "load_prices"]
    assert total == len(loads) == len(TICKS), tasks
    assert [t[3] for t in loads] == ["success"] * len(TICKS), tasks
    overlapping = any(later[0] < earlier[1] for earlier, later in pairwise(spans))
    assert overlapping, spans
    # ...several runs were in flight at once, yet exactly one raw_prices event, after the last
    # load ended: every other announce stood down for the loads still to come. (The scheduled
    # run that unpausing may start counts among the loads; whichever ends last announces.)
    assert len(events) == 1, (events, tasks)
    assert events[0][0] >= max(t[4] for t in tasks if t[2] == "load_prices")
    announced = [t for t in tasks if t[2] == "announce" and t[3] == "success"]
    assert len(announced) == 1, tasks
    assert query(url, "select count(*) from raw.ingest_batches where announced_at is null") == [
        (0,)
    ]
    last_bars = query(url, "select symbol, max(trade_date)::text, count(*) from raw.prices"
                      " group by 1 order by 1")  # fmt: skip
    # From Jan 3 (the first run's day minus the 5-day look-back) to the last run's day.
    bars = sum(1 for d in days if d >= FROM - timedelta(days=5) and d.weekday() < 5)
    assert last_bars == [("AAA", str(TICKS[-1]), bars), ("BBB", str(TICKS[-1]), bars)]
