"""The ingest DAG through dag.test(): per-file failure isolation, the failure threshold, no
Asset event when nothing changed, the configured universe and provider Connection, and the
freshness report."""

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


def _state(run, task_id: str = "announce") -> str:
    return str(next(ti.state for ti in run.get_task_instances() if ti.task_id == task_id))


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
    # Same rows again, nothing changed; but the failed run's committed rows were never
    # announced, so this run announces them, once.
    assert _state(tolerant) == "success"
    assert asset_events("raw_prices") == events + 1
    again = dag_runner("marketflow_ingest", {**conf, "max_failed_share": 0.5}, retries=0)
    # Nothing changed and nothing pending: announce is skipped and emits nothing.
    assert _state(again) == "skipped"
    assert asset_events("raw_prices") == events + 1

    (tmp_path / "CCC.csv").write_text(HEADER + "2024-01-02,20,21,19,20.5,20.5,500\n")
    fixed = dag_runner("marketflow_ingest", {**conf, "max_failed_share": 0.2}, retries=0)
    assert _state(fixed) == "success"
    assert asset_events("raw_prices") == events + 2
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


def test_the_scheduled_ingest_loads_the_configured_universe_from_the_provider_connection(
    dag_runner, make_database, tmp_path
):
    """No Params at all, as a scheduled run: the provider and its folder come from the
    Connection, the symbols and their first days from the universe file the Variable names;
    an active symbol without the market's latest bar is reported and notified."""
    url = make_database()
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    _write_prices(vendor)
    (vendor / "CCC.csv").write_text((vendor / "AAA.csv").read_text())
    (vendor / "DDD.csv").write_text((vendor / "AAA.csv").read_text())
    universe = tmp_path / "universe.csv"
    universe.write_text("symbol,start,active\naaa,,\nBBB,2024-01-05,\nCCC,,false\nEEE,,\n")
    connection = {"conn_type": "generic", "extra": {"provider": "csv", "path": str(vendor)}}
    dag_runner.configure(
        MARKETFLOW_DATABASE_URL=url,
        MARKETFLOW_INGEST_DATA_ROOTS=json.dumps([str(tmp_path)]),
        AIRFLOW_CONN_MARKETFLOW_PROVIDER=json.dumps(connection),
        AIRFLOW_VAR_MARKETFLOW_UNIVERSE=str(universe),
    )
    events = asset_events("raw_prices")
    run = dag_runner("marketflow_ingest", {"start": "2024-01-01", "end": "2024-01-31"}, retries=0)

    assert str(run.state) == "success"
    # AAA whole, BBB from its start date; CCC inactive and DDD not listed: not loaded.
    assert query(url, "select symbol, min(trade_date)::text, count(*) from raw.prices"
                 " group by 1 order by 1") == [("AAA", "2024-01-02", 6), ("BBB", "2024-01-05", 3)]  # fmt: skip
    assert query(url, "select provider from raw.ingest_batches") == [("csv",)]
    assert query(url, "select symbol, start_date::text, active from raw.universe order by 1") == [
        ("AAA", None, True),
        ("BBB", "2024-01-05", True),
        ("CCC", None, False),
        ("EEE", None, True),
    ]
    assert asset_events("raw_prices") == events + 1
    # EEE is in the universe and active but the provider has nothing: reported, not skipped.
    xcom = next(ti for ti in run.get_task_instances() if ti.task_id == "check_freshness")
    assert str(xcom.state) == "success"
    assert query(url, "select kind, message from monitoring.notifications") == [
        (
            "stale_symbols",
            "1 active symbol(s) have no bar on 2024-01-09, the market's latest day: "
            "EEE (last bar never)",
        )
    ]


def test_a_bad_universe_file_fails_the_load_and_loads_nothing(dag_runner, make_database, tmp_path):
    url = make_database()
    _write_prices(tmp_path)
    universe = tmp_path / "universe.csv"
    universe.write_text("symbol,start\nAAA,2024-02-30\n")
    dag_runner.configure(
        MARKETFLOW_DATABASE_URL=url, MARKETFLOW_INGEST_DATA_ROOTS=json.dumps([str(tmp_path)])
    )
    conf = {"provider": "csv", "path": str(tmp_path), "universe": str(universe)}
    run = dag_runner("marketflow_ingest", conf, retries=0)
    assert str(run.state) == "failed"
    assert query(url, "select count(*) from raw.prices") == [(0,)]
    assert query(url, "select count(*) from raw.universe") == [(0,)]
