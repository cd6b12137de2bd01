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
