"""A real Airflow metadata database (PostgreSQL) for this test session, migrated once."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.db import drop_database, ensure_database, ensure_role
from core.urls import database_name


def _airflow(*args: str) -> None:
    airflow = str(Path(sys.executable).parent / "airflow")
    proc = subprocess.run(
        [airflow, *args], capture_output=True, text=True, timeout=600, env=dict(os.environ)
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"airflow {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )


@pytest.fixture(scope="session")
def airflow_db(admin_url: str) -> Iterator[str]:
    url = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    name = database_name(url)
    drop_database(admin_url, name)
    ensure_role(admin_url, "marketflow")  # a fresh server has no role until a bootstrap
    ensure_database(admin_url, name, "marketflow")
    Path(os.environ["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    _airflow("db", "migrate")
    yield url
    drop_database(admin_url, name)
    shutil.rmtree(os.environ["AIRFLOW_HOME"], ignore_errors=True)


@pytest.fixture
def dag_runner(airflow_db: str, monkeypatch: pytest.MonkeyPatch):
    """Parse the DAGs against the given environment and run one with `dag.test()`."""
    from airflow.dag_processing.dagbag import DagBag

    dags_dir = str(Path(__file__).resolve().parents[2] / "dags")

    def configure(**env: str) -> None:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        _airflow("dags", "reserialize")

    def run(dag_id: str, conf: dict | None = None, retries: int | None = None):
        bag = DagBag(dags_dir)
        assert not bag.import_errors, bag.import_errors
        dag = bag.get_dag(dag_id)
        if retries is not None:  # a failure test should not sit out the retry back-off
            for task in dag.tasks:
                task.retries = retries
        return dag.test(run_conf=conf)

    run.configure = configure  # type: ignore[attr-defined]
    return run
