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
}
ALLOWED_TOP_LEVEL = {"airflow", "cosmos", "pendulum", "dags", "marketflow", "__future__"}
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
    if dag_id == "marketflow_training":  # see test_weekly_training_waits_for_its_monday
        assert dag.start_date is None
    else:
        assert dag.start_date.tzinfo is not None
    assert dag.default_args.get("retries", 0) >= 1
    for task in dag.tasks:
        assert task.retries is not None


def test_chain_is_linked_by_assets(dagbag):
    from dags import assets

    def inlets(dag_id):
        condition = dagbag.get_dag(dag_id).timetable.asset_condition
        return {asset.name for asset in condition.objects}

    def outlets(dag_id):
        return {o.name for t in dagbag.get_dag(dag_id).tasks for o in t.outlets}

    assert outlets("marketflow_ingest") == {assets.RAW_PRICES.name}
    assert inlets("marketflow_features") == {assets.RAW_PRICES.name}
    assert outlets("marketflow_features") == {assets.FEATURES.name}
    assert inlets("marketflow_training") == {assets.FEATURES.name, assets.RETRAIN_REQUEST.name}
    assert outlets("marketflow_training") == {assets.MODEL.name}
    assert inlets("marketflow_scoring") == {assets.MODEL.name}
    assert outlets("marketflow_scoring") == {assets.SIGNALS.name}
    assert inlets("marketflow_monitoring") == {assets.SIGNALS.name}
    assert outlets("marketflow_monitoring") == {assets.DRIFT.name, assets.RETRAIN_REQUEST.name}


def test_features_dag_validates_before_and_after_dbt(dagbag):
    dag = dagbag.get_dag("marketflow_features")
    dbt_tasks = [t for t in dag.tasks if t.task_id.startswith("dbt.")]
    assert any(t.task_id.endswith(".run") for t in dbt_tasks)
    assert any(t.task_id.endswith(".test") for t in dbt_tasks)
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
    train = dag.get_task("train_and_register")
    assert dag.get_task("check_data") in train.upstream_list
    assert (train.queue, train.pool) == ("default", "default_pool")  # env picks gpu on Celery


def test_weekly_training_waits_for_its_monday(dagbag):
    """Unpausing the training DAG must not start a run for last Monday: it would train before
    the first features exist (the demo saw it fail, retry and train a third time)."""
    import pendulum
    from airflow.timetables.base import TimeRestriction
    from airflow.timetables.trigger import CronTriggerTimetable

    dag = dagbag.get_dag("marketflow_training")
    cron = dag.timetable.timetable  # the cron part of AssetOrTimeSchedule, as the DAG file has it
    # ... as the scheduler evaluates it, with the restriction the DAG's own settings give.
    scheduler_side = CronTriggerTimetable(
        cron.expression, timezone=cron.timezone, run_immediately=cron.run_immediately
    )
    info = scheduler_side.next_dagrun_info(
        last_automated_data_interval=None,
        restriction=TimeRestriction(earliest=dag.start_date, latest=None, catchup=dag.catchup),
    )
    now = pendulum.now("UTC")
    assert info is not None and now < info.run_after <= now.add(days=7)
    assert info.run_after.day_of_week == pendulum.MONDAY
