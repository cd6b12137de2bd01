"""A real Airflow metadata database (PostgreSQL) for this test session, migrated once."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from marketflow.db import drop_database, ensure_database
from marketflow.settings import database_name


def _airflow(*args: str) -> None:
    airflow = str(Path(sys.executable).parent / "airflow")
    proc = subprocess.run([airflow, *args], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"airflow {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


@pytest.fixture(scope="session")
def airflow_db(admin_url: str) -> Iterator[str]:
    url = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    name = database_name(url)
    drop_database(admin_url, name)
    ensure_database(admin_url, name, "marketflow")
    Path(os.environ["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    _airflow("db", "migrate")
    yield url
    drop_database(admin_url, name)
    shutil.rmtree(os.environ["AIRFLOW_HOME"], ignore_errors=True)


def reserialize() -> None:
    _airflow("dags", "reserialize")
