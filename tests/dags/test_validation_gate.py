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
        cur.execute("select success, failed_expectations::text from monitoring.validation_runs")
        success, failed = cur.fetchone()
    conn.close()
    assert success is False
    assert "expect_column_pair_values_a_to_be_greater_than_b" in failed
