"""When new features should start a training (issue 13's cadence).

Training runs weekly and on a RETRAIN_REQUEST, never once per trading day. The one exception
is a stack without a champion: its features could not be scored until the weekly run, so the
features DAG requests a first training at once. The rule lives here, not in the DAG file, so
it is tested without Airflow.
"""

from __future__ import annotations

from core.settings import Settings, get_settings
from ml.registry.card import champion_version
from ml.registry.tracking import configure


def first_training_reason(settings: Settings | None = None) -> str | None:
    """Why features just built should start a training now, or None (they should not).

    A registry that cannot answer raises (it does not count as "no champion": that would train
    on every trading day the registry is down)."""
    settings = settings or get_settings()
    name = settings.mlflow.model_name
    if champion_version(configure(settings), name) is not None:
        return None
    return f"model {name!r} has no @champion yet: training requested"
