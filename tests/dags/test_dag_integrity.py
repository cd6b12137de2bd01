"""Every DAG parses, follows the house rules, and the chain is linked through Assets."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
EXPECTED = {
    "marketflow_ingest",
    "marketflow_features",
    "marketflow_training",
    "marketflow_scoring",
    "marketflow_monitoring",
    "marketflow_quality_sweep",
}
# Cron DAGs without a start_date: unpausing waits for the next tick (see the tests below).
NO_START_DATE = {"marketflow_training", "marketflow_quality_sweep"}
ALLOWED_TOP_LEVEL = {"airflow", "cosmos", "pendulum", "dags", "core", "__future__"}
HEAVY = [
    "pandas",
    "numpy",
    "torch",
    "mlflow",
    "sklearn",
    "xgboost",
    "evidently",
    "great_expectations",
    "ml",
    "ingest",
    "api",
    "expectations",
]


# A failed validation is a verdict on the data: a retry re-reads the same rows and fails again
# (only later, after the back-off). Asking for a retrain is not repeated blindly either.
NO_RETRIES = {
    ("marketflow_features", "validate_raw_prices"),
    ("marketflow_features", "validate_labels"),
    ("marketflow_features", "validate_universe"),
    ("marketflow_features", "validate_features"),
    ("marketflow_monitoring", "request_retraining"),
    ("marketflow_quality_sweep", "sweep"),
}


@pytest.fixture(scope="module")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(DAGS_DIR))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == EXPECTED


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_dag_house_rules(dagbag, dag_id):
    dag = dagbag.get_dag(dag_id)
    assert dag.tags and "marketflow" in dag.tags
    assert dag.schedule is not None, "schedule must be explicit"
    assert dag.catchup is False
    if dag_id in NO_START_DATE:  # see test_weekly_training_waits_for_its_monday
        assert dag.start_date is None
    else:
        assert dag.start_date.tzinfo is not None
    assert dag.default_args.get("retries", 0) >= 1
    # A failed run is notified (dags/notify.py): recorded, and mailed when SMTP is configured.
    callbacks = dag.on_failure_callback
    assert callbacks and any(type(c).__name__ == "RecordNotifier" for c in callbacks)
    for task in dag.tasks:  # every task retries, except the deliberate opt-outs below
        if (dag_id, task.task_id) in NO_RETRIES:
            assert task.retries == 0, f"{dag_id}.{task.task_id} should not retry"
        else:
            assert task.retries >= 1, f"{dag_id}.{task.task_id} has retries={task.retries}"


def test_chain_is_linked_by_assets(dagbag):
    from dags import assets

    def inlets(dag_id):
        condition = dagbag.get_dag(dag_id).timetable.asset_condition
        return {asset.name for asset in getattr(condition, "objects", [condition])}

    def outlets(dag_id):
        return {o.name for t in dagbag.get_dag(dag_id).tasks for o in t.outlets}

    assert outlets("marketflow_ingest") == {assets.RAW_PRICES.name}
    assert inlets("marketflow_features") == {assets.RAW_PRICES.name}
    # Features also request a first training while there is no champion (skipped otherwise).
    assert outlets("marketflow_features") == {assets.FEATURES.name, assets.RETRAIN_REQUEST.name}
    # Training is weekly or requested: never on each trading day's features (issue 13).
    assert inlets("marketflow_training") == {assets.RETRAIN_REQUEST.name}
    assert outlets("marketflow_training") == {assets.MODEL.name}
    # Each trading day is scored with the champion, and again when a new model lands.
    assert inlets("marketflow_scoring") == {assets.FEATURES.name, assets.MODEL.name}
    assert outlets("marketflow_scoring") == {assets.SIGNALS.name}
    assert inlets("marketflow_monitoring") == {assets.SIGNALS.name}
    assert outlets("marketflow_monitoring") == {assets.DRIFT.name, assets.RETRAIN_REQUEST.name}


def test_features_dag_validates_before_and_after_dbt(dagbag):
    dag = dagbag.get_dag("marketflow_features")
    dbt_tasks = [t for t in dag.tasks if t.task_id.startswith("dbt.")]
    assert any(t.task_id.endswith(".run") for t in dbt_tasks)
    assert any(t.task_id.endswith(".test") for t in dbt_tasks)
    # A test of two marts runs after both are built and tested (attached to one of them, it
    # raced the other's build on a cold demo, failed and waited out a retry).
    shared = dag.get_task("dbt.assert_features_and_labels_share_keys_test")
    assert shared.upstream_task_ids == {"dbt.features_daily.test", "dbt.labels_daily.test"}
    first = dag.get_task("validate_raw_prices")
    last = dag.get_task("validate_features")
    for t in dbt_tasks:
        assert first.task_id in t.get_flat_relative_ids(upstream=True)
        assert last.task_id in t.get_flat_relative_ids(upstream=False)


@pytest.mark.parametrize("path", sorted(DAGS_DIR.glob("*.py")), ids=lambda p: p.name)
def test_module_level_imports_are_light(path):
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            assert top in ALLOWED_TOP_LEVEL or top in sys.stdlib_module_names, (
                f"{path.name} imports {name} at module level; import it inside the task"
            )


def test_parsing_dags_imports_nothing_heavy(airflow_db):
    code = textwrap.dedent(
        f"""
        import sys
        from airflow.dag_processing.dagbag import DagBag
        bag = DagBag({str(DAGS_DIR)!r})
        assert not bag.import_errors, bag.import_errors
        heavy = [m for m in {HEAVY!r} if m in sys.modules]
        print("HEAVY=" + ",".join(heavy))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("HEAVY=")][-1]
    assert line == "HEAVY=", f"heavy modules imported at parse time: {line}"


def test_training_runs_on_new_features_a_retrain_request_or_weekly(dagbag):
    dag = dagbag.get_dag("marketflow_training")
    timetable = dag.timetable
    assert type(timetable).__name__ == "AssetOrTimeSchedule"
    assert type(timetable.timetable).__name__ == "CronTriggerTimetable"
    assert timetable.timetable.expression == "0 6 * * 1"  # Monday 06:00 UTC
    # check_data -> begin -> one mapped walk-forward per candidate (CPU and GPU groups) ->
    # register_and_gate, which runs even when one group is empty.
    begin = dag.get_task("begin")
    assert dag.get_task("check_data") in begin.upstream_list
    gather = dag.get_task("register_and_gate")
    on_cpu, on_gpu = dag.get_task("walk_forward_cpu"), dag.get_task("walk_forward_gpu")
    assert {on_cpu, on_gpu} <= set(gather.upstream_list)
    assert gather.trigger_rule == "none_failed_min_one_success"
    assert type(on_cpu).__name__ == type(on_gpu).__name__ == "DecoratedMappedOperator"
    assert on_cpu.queue == "default"
    # The GPU steps carry the training queue and pool (the env picks gpu on Celery).
    for task in (on_gpu, gather):
        assert (task.queue, task.pool) == ("default", "default_pool")


# A fixed "now" for every weekday, and around Monday 06:00 UTC (the weekly tick) on both sides.
UNPAUSED_AT = [
    "2026-11-23T05:59:00",  # Monday, just before the tick
    "2026-11-23T06:00:00",  # Monday, on the tick
    "2026-11-23T06:01:00",  # Monday, just after: the morning's tick is already stale
    "2026-11-23T15:00:00",  # Monday afternoon (Airflow's default ran the 06:00 tick here)
    "2026-11-23T23:59:00",
    "2026-11-24T12:00:00",  # Tuesday
    "2026-11-25T12:00:00",
    "2026-11-26T12:00:00",
    "2026-11-27T12:00:00",
    "2026-11-28T12:00:00",
    "2026-11-29T23:59:59",  # Sunday, a second before Monday
]


def _first_scheduled_run(dagbag, dag_id: str, now: str):
    """(frozen now, the DAG as the scheduler sees it, serialized and read back, and its
    first scheduled run after being unpaused at `now`)."""
    import pendulum
    import time_machine
    from airflow.serialization.serialized_objects import DagSerialization

    dag = DagSerialization.from_dict(DagSerialization.to_dict(dagbag.get_dag(dag_id)))
    frozen = pendulum.parse(now, tz="UTC")
    with time_machine.travel(frozen, tick=False):
        info = dag.next_dagrun_info(last_automated_run_info=None)
    assert info is not None
    return frozen, dag, info


@pytest.mark.parametrize("now", UNPAUSED_AT)
def test_weekly_training_waits_for_its_monday(dagbag, now):
    """Unpausing the training DAG never runs a stale weekly tick: the first scheduled run is
    the next Monday 06:00 UTC at or after the moment of unpausing, never one in the past (a
    past tick would train before the first features exist; the demo saw it fail, retry and
    register a second, identical version)."""
    frozen, _, info = _first_scheduled_run(dagbag, "marketflow_training", now)
    monday_six = frozen.start_of("week").add(hours=6)  # pendulum weeks start on Monday
    expected = monday_six if frozen <= monday_six else monday_six.add(weeks=1)
    assert info.run_after == expected, f"unpaused at {now}: first run {info.run_after}"
    assert info.run_after >= frozen


@pytest.mark.parametrize("now", UNPAUSED_AT)
def test_quality_sweep_waits_for_its_saturday(dagbag, now):
    """The weekly full sweep, like training, never runs a stale tick when unpaused: its first
    run is the next Saturday 04:00 UTC at or after that moment."""
    frozen, dag, info = _first_scheduled_run(dagbag, "marketflow_quality_sweep", now)
    saturday_four = frozen.start_of("week").add(days=5, hours=4)
    expected = saturday_four if frozen <= saturday_four else saturday_four.add(weeks=1)
    assert info.run_after == expected, f"unpaused at {now}: first run {info.run_after}"
    assert dag.max_active_tasks == 1  # one whole table read at a time
