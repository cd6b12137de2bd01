"""Defaults shared by the DAG files (standard library only)."""

from datetime import timedelta

import pendulum

START_DATE = pendulum.datetime(2024, 1, 1, tz="UTC")

DEFAULT_ARGS = {
    "owner": "marketflow",
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=20),
}


def database_url() -> str:
    from core.settings import get_settings

    return get_settings().db.url


def run_key() -> str:
    """This task's key across its tries (dag/run/task[/map index]): what a re-run of the task
    writes under, so a retry replaces its record instead of adding one."""
    from airflow.sdk import get_current_context

    ti = get_current_context()["ti"]
    index = getattr(ti, "map_index", -1)
    suffix = f"/{index}" if index is not None and index >= 0 else ""
    return f"{ti.dag_id}/{ti.run_id}/{ti.task_id}{suffix}"
