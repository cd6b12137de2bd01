"""The Airflow scheduler killed (SIGKILL, its leader only, as the OOM killer does) while a dbt
task of `marketflow_features` runs, then started again as `make up` does: the run still ends,
successfully, and the tables dbt builds are whole.

What was seen: the dbt task in flight runs in a process group of its own (Airflow's task
supervisor), so it finishes and reports to the api-server; a task the dead scheduler had
queued is failed and retried by the new one. Nothing half-built is left either way (each dbt
model is built in one transaction)."""

from __future__ import annotations

import os
import signal
import uuid
from datetime import date
from pathlib import Path

import psycopg2
import pytest

from core.dbt import run_dbt
from core.settings import get_settings
from core.urls import database_name
from ingest.loader import ingest
from marketflow.services import run_dir, start_all
from tests.api.api_test_helpers import free_port
from tests.helpers import airflow_cli, own_airflow, wait_for

pytestmark = pytest.mark.e2e

DAG = "marketflow_features"


def _one(url: str, sql: str, params: tuple = ()) -> tuple | None:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        row = cur.fetchone()
    conn.close()
    return row


def test_scheduler_killed_while_dbt_runs_and_restarted_the_run_ends_and_tables_are_whole(
    make_database,
    admin_url: str,
    mlflow_store: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = make_database()
    batch = ingest(url, "sample", ["AAPL", "MSFT", "IBM"], date(2010, 1, 1), date(2012, 12, 31))
    assert batch.rows_inserted > 0
    airflow_db = database_name(url) + "_airflow"
    monkeypatch.setenv("MARKETFLOW_DATABASE_URL", url)
    monkeypatch.setenv("MARKETFLOW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MARKETFLOW_AIRFLOW_PORT", str(free_port()))
    monkeypatch.setenv("MARKETFLOW_AIRFLOW_DATABASE", airflow_db)
    # The features DAG asks the registry for a champion (request_first_training) while the
    # scoring DAG starts on the same event: a store migrated beforehand, as a server's is (two
    # tasks creating a fresh SQLite store at once break its migration).
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_store["MLFLOW_TRACKING_URI"])
    monkeypatch.setenv("MARKETFLOW_MODEL_NAME", f"drill_{uuid.uuid4().hex[:8]}")
    # Airflow notices a dead scheduler's tasks after minutes by default; the drill shortens
    # the intervals, not the mechanism.
    monkeypatch.setenv("AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD", "10")
    monkeypatch.setenv("AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL", "10")
    monkeypatch.setenv("AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT", "30")
    settings = get_settings()
    from mlflow import MlflowClient

    MlflowClient(mlflow_store["MLFLOW_TRACKING_URI"]).search_experiments()  # migrated now
    with own_airflow(settings, admin_url) as (env, airflow_url, stack):
        run_dbt(["parse"], url)
        airflow_cli(env, "dags", "reserialize")
        start_all(settings, echo=lambda _: None, stack=stack)
        for downstream in ("marketflow_training", "marketflow_scoring", "marketflow_monitoring"):
            airflow_cli(env, "dags", "pause", downstream)  # the drill is about the features run
        airflow_cli(env, "dags", "unpause", DAG)
        airflow_cli(env, "dags", "trigger", DAG, "--run-id", "drill")

        running = "select task_id from task_instance where dag_id = %s and run_id = 'drill' " \
                  "and task_id like 'dbt.%%' and state = 'running' limit 1"  # fmt: skip
        wait_for(lambda: _one(airflow_url, running, (DAG,)) is not None, "a running dbt task", 300)
        (task,) = _one(airflow_url, running, (DAG,)) or ("",)
        scheduler = int((run_dir(settings) / "airflow-scheduler.pid").read_text())
        os.kill(scheduler, signal.SIGKILL)
        os.waitpid(scheduler, 0)  # this process started it: reap it, as init would
        # `make up` again: the dead scheduler's group (executor workers, the task) is stopped
        # first, then a new scheduler starts.
        said: list[str] = []
        start_all(settings, echo=said.append, stack=stack)
        assert any("stopping what its dead process" in line for line in said), said

        state = "select state from dag_run where dag_id = %s and run_id = 'drill'"
        wait_for(lambda: (_one(airflow_url, state, (DAG,)) or ("",))[0] in ("success", "failed"),
              "the run to end", 600)  # fmt: skip
        tries = _one(airflow_url, "select try_number, state from task_instance where dag_id = %s"
                     " and run_id = 'drill' and task_id = %s", (DAG, task))  # fmt: skip
        assert _one(airflow_url, state, (DAG,)) == ("success",), f"{task}: {tries}"
        assert tries is not None and tries[1] == "success", tries

    # Whole tables: every price has its feature row, nothing half-built is left behind.
    prices = _one(url, "select count(*) from raw.prices")
    assert _one(url, "select count(*) from marts.features_daily") == prices
    assert _one(url, "select count(*) from marts.labels_daily") == prices
    leftovers = _one(url, "select count(*) from pg_class where relname like '%%__dbt_%%'")
    assert leftovers == (0,)
