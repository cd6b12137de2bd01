"""The ingest DAG through dag.test(): per-file failure isolation, the failure threshold, and
no Asset event when nothing changed."""

from __future__ import annotations

import json
from datetime import UTC
from pathlib import Path

from tests.helpers import asset_events, query

HEADER = "Date,Open,High,Low,Close,Adj Close,Volume\n"


def _write_prices(folder: Path) -> None:
    rows = "".join(f"2024-01-{day:02d},10,11,9,10.5,10.5,1000\n" for day in (2, 3, 4, 5, 8, 9))
    (folder / "AAA.csv").write_text(HEADER + rows)
    (folder / "BBB.csv").write_text(HEADER + rows)
    (folder / "CCC.csv").write_text("Date,Open,High,Low,Volume\n2024-01-02,10,11,9,1000\n")


def _load_state(run) -> str:
    return str(next(ti.state for ti in run.get_task_instances() if ti.task_id == "load_prices"))


def test_a_bad_file_is_isolated_and_the_threshold_fails_loudly(dag_runner, make_database, tmp_path):
    url = make_database()
    _write_prices(tmp_path)
    roots = json.dumps([str(tmp_path)])
    dag_runner.configure(MARKETFLOW_DATABASE_URL=url, MARKETFLOW_INGEST_DATA_ROOTS=roots)
    conf = {"provider": "csv", "path": str(tmp_path), "start": "2024-01-01", "end": "2024-01-31"}

    events = asset_events("raw_prices")
    strict = dag_runner("marketflow_ingest", {**conf, "max_failed_share": 0.2}, retries=0)

    assert str(strict.state) == "failed"
    # The good files were committed before the task failed on the share of failures...
    assert query(url, "select symbol, count(*) from raw.prices group by 1 order by 1") == [
        ("AAA", 6),
        ("BBB", 6),
    ]
    assert query(url, "select units_failed, failures->0->>'unit' from raw.ingest_batches") == [
        (1, "CCC.csv")
    ]
    # ...but a failed task emits no Asset event.
    assert asset_events("raw_prices") == events

    tolerant = dag_runner("marketflow_ingest", {**conf, "max_failed_share": 0.5}, retries=0)
    assert str(tolerant.state) == "success"
    # Same rows again: nothing changed, so the task is skipped and emits nothing.
    assert _load_state(tolerant) == "skipped"
    assert asset_events("raw_prices") == events

    (tmp_path / "CCC.csv").write_text(HEADER + "2024-01-02,20,21,19,20.5,20.5,500\n")
    fixed = dag_runner("marketflow_ingest", {**conf, "max_failed_share": 0.2}, retries=0)
    assert _load_state(fixed) == "success"
    assert asset_events("raw_prices") == events + 1
    assert query(url, "select count(*) from raw.prices where symbol = 'CCC'") == [(1,)]


def test_a_path_param_outside_the_data_roots_is_refused(dag_runner, make_database, tmp_path):
    url = make_database()
    _write_prices(tmp_path)
    allowed = tmp_path / "vendor"
    allowed.mkdir()
    dag_runner.configure(
        MARKETFLOW_DATABASE_URL=url, MARKETFLOW_INGEST_DATA_ROOTS=json.dumps([str(allowed)])
    )
    conf = {"provider": "csv", "path": str(tmp_path), "start": "2024-01-01", "end": "2024-01-31"}
    run = dag_runner("marketflow_ingest", conf, retries=0)
    assert str(run.state) == "failed"
    assert query(url, "select count(*) from raw.prices") == [(0,)]


def test_after_downtime_one_scheduled_run_catches_up_every_missing_day(
    dag_runner, make_database, tmp_path
):
    from datetime import datetime

    from airflow.dag_processing.dagbag import DagBag

    url = make_database()
    days = [d for d in range(2, 32) if datetime(2024, 1, d).weekday() < 5]
    rows = "".join(f"2024-01-{d:02d},10,11,9,10.5,10.5,1000\n" for d in days)
    (tmp_path / "AAA.csv").write_text(HEADER + rows)
    dag_runner.configure(
        MARKETFLOW_DATABASE_URL=url,
        MARKETFLOW_INGEST_DATA_ROOTS=json.dumps([str(tmp_path)]),
        MARKETFLOW_DATA_PROVIDER="csv",
    )
    first = {"provider": "csv", "path": str(tmp_path), "start": "2024-01-01", "end": "2024-01-05"}
    assert str(dag_runner("marketflow_ingest", first, retries=0).state) == "success"
    assert query(url, "select max(trade_date)::text from raw.prices") == [("2024-01-05",)]

    # The stack was down until the evening of Jan 31: its scheduled run (the interval of the
    # cron tick, a 5-day look-back) would start on Jan 26; it starts from the last bar instead.
    dag = DagBag(str(Path(__file__).resolve().parents[2] / "dags")).get_dag("marketflow_ingest")
    tick = datetime(2024, 1, 31, 22, tzinfo=UTC)
    run = dag.test(logical_date=tick, run_conf={"provider": "csv", "path": str(tmp_path)})

    assert str(run.state) == "success"
    assert query(url, "select count(*), max(trade_date)::text from raw.prices") == [
        (len(days), "2024-01-31")
    ]
    # One batch for the whole gap, read from the last bar loaded minus the 5-day look-back:
    # every January bar came in (the four already loaded, unchanged), 18 of them new.
    assert query(
        url, "select rows_in, rows_inserted from raw.ingest_batches order by started_at"
    ) == [(4, 4), (len(days), len(days) - 4)]
