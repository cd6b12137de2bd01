"""A failed Great Expectations checkpoint stops the features DAG before dbt, and the
FEATURES asset is not emitted, so training never sees the bad data."""

from __future__ import annotations

import uuid

import psycopg2

from tests.helpers import asset_events


def test_bad_raw_prices_stop_the_pipeline_before_dbt_and_training(dag_runner, make_database):
    url = make_database()
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        batch = str(uuid.uuid4())
        # high < low: the loader would reject it, so it is written straight to the table,
        # as a buggy provider or a manual fix might.
        cur.executemany(
            "insert into raw.prices (symbol, trade_date, open, high, low, close, adj_close, "
            "volume, provider, batch_id) values (%s, %s, %s, %s, %s, %s, %s, %s, 'test', %s)",
            [
                ("AAA", "2024-01-02", 10, 11, 9, 10.5, 10.5, 1000, batch),
                ("AAA", "2024-01-03", 10, 9, 11, 10.0, 10.0, 1000, batch),
            ],
        )
    conn.close()
    dag_runner.configure(MARKETFLOW_DATABASE_URL=url)
    events_before = asset_events("features_daily")

    run = dag_runner("marketflow_features")

    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state) == "failed"
    assert states["validate_raw_prices"] == "failed"
    dbt_states = {v for k, v in states.items() if k.startswith("dbt.")}
    assert dbt_states == {"upstream_failed"}, states
    assert states["validate_features"] == "upstream_failed"
    assert asset_events("features_daily") == events_before, (
        "FEATURES must not be emitted after a failed check"
    )

    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("select to_regclass('marts.features_daily')")
        assert cur.fetchone()[0] is None, "dbt must not have built anything"
        # The failed run was notified (dags/notify.py: the record, and SMTP when configured).
        cur.execute("select kind, dag_id, run_id, message from monitoring.notifications")
        ((kind, dag_id, run_id, message),) = cur.fetchall()
        assert (kind, dag_id, run_id) == ("dag_failed", "marketflow_features", run.run_id)
        assert message.startswith(f"marketflow_features run {run.run_id} failed"), message
        cur.execute("select success, failed_expectations::text from monitoring.validation_runs")
        success, failed = cur.fetchone()
    conn.close()
    assert success is False
    assert "expect_column_pair_values_a_to_be_greater_than_b" in failed


def test_a_bad_new_row_fails_the_scoped_gate_and_stops_the_pipeline(dag_runner, make_database):
    """After a first pass the raw gate validates only the rows ingested since (the daily
    case, expectations/scope.py); a bad row among them still stops everything downstream."""
    from expectations.checkpoint import run_checkpoint

    url = make_database()
    good = [
        ("AAA", f"2024-01-{day:02d}", 10, 11, 9, 10.5, 10.5, 1000, str(uuid.uuid4()))
        for day in (2, 3, 4)
    ]
    insert = (
        "insert into raw.prices (symbol, trade_date, open, high, low, close, adj_close, "
        "volume, provider, batch_id) values (%s, %s, %s, %s, %s, %s, %s, %s, 'test', %s)"
    )
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.executemany(insert, good)
    conn.close()
    first = run_checkpoint(url, "raw_prices")
    assert first.success and first.scope == "whole table", first.describe()

    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        # A new day with a negative close, written past the loader (which would reject it).
        cur.execute(insert, ("AAA", "2024-01-05", 10, 11, 9, -10.0, 10.0, 1000, str(uuid.uuid4())))
    conn.close()
    dag_runner.configure(MARKETFLOW_DATABASE_URL=url)
    events_before = asset_events("features_daily")

    run = dag_runner("marketflow_features")

    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert states["validate_raw_prices"] == "failed"
    assert {v for k, v in states.items() if k.startswith("dbt.")} == {"upstream_failed"}, states
    assert states["validate_features"] == "upstream_failed"
    assert asset_events("features_daily") == events_before
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "select scope, rows_validated, failed_expectations::text"
            " from monitoring.validation_runs order by id desc limit 1"
        )
        scope, rows, failed = cur.fetchone()
    conn.close()
    assert scope.startswith("rows ingested since") and rows == 1
    assert "2024-01-05" in failed and "close" in failed


def test_the_weekly_sweep_catches_an_old_row_the_daily_gate_cannot_see(dag_runner, make_database):
    from expectations.checkpoint import run_checkpoint

    url = make_database()
    rows = [
        ("AAA", f"2024-01-{day:02d}", 10, 11, 9, 10.5, 10.5, 1000, str(uuid.uuid4()))
        for day in (2, 3, 4)
    ]
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.executemany(
            "insert into raw.prices (symbol, trade_date, open, high, low, close, adj_close, "
            "volume, provider, batch_id) values (%s, %s, %s, %s, %s, %s, %s, %s, 'test', %s)",
            rows,
        )
    conn.close()
    assert run_checkpoint(url, "raw_prices").success
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        # Behind the pipeline's back: an UPDATE that leaves ingested_at alone.
        cur.execute("update raw.prices set low = 12 where trade_date = '2024-01-03'")
    conn.close()
    daily = run_checkpoint(url, "raw_prices")
    assert daily.success and daily.rows_validated == 0, daily.describe()

    dag_runner.configure(MARKETFLOW_DATABASE_URL=url)
    run = dag_runner("marketflow_quality_sweep")

    states = {
        (ti.task_id, ti.map_index): str(ti.state)
        for ti in run.get_task_instances()
        if ti.map_index >= 0
    }
    assert states[("sweep", 0)] == "failed"  # raw_prices; the marts were never built here
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "select scope, failed_expectations::text from monitoring.validation_runs"
            " where suite = 'raw_prices' order by id desc limit 1"
        )
        scope, failed = cur.fetchone()
    conn.close()
    assert scope == "whole table"
    assert "2024-01-03" in failed and "expect_column_pair_values_a_to_be_greater_than_b" in failed
