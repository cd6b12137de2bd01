"""MLflow plumbing: tracking URI, experiment with a sane artifact location, registry aliases."""

from __future__ import annotations

import logging
from typing import Any

from marketflow.settings import Settings, get_settings

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"


def configure(settings: Settings | None = None) -> Any:
    """Point MLflow at the configured store and return an MlflowClient."""
    import mlflow
    from mlflow import MlflowClient

    settings = settings or get_settings()
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    return MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)


def ensure_experiment(settings: Settings | None = None) -> str:
    """Experiment id; created with a local artifact folder when there is no tracking server."""
    import mlflow

    settings = settings or get_settings()
    client = configure(settings)
    exp = client.get_experiment_by_name(settings.mlflow_experiment)
    if exp is not None:
        mlflow.set_experiment(experiment_id=exp.experiment_id)
        return exp.experiment_id
    location = None
    if not settings.mlflow_tracking_uri.startswith("http"):
        # Without a server, MLflow would write artifacts to ./mlruns of whatever cwd we have.
        settings.artifact_root.mkdir(parents=True, exist_ok=True)
        location = settings.artifact_root.resolve().as_uri()
    exp_id = client.create_experiment(settings.mlflow_experiment, artifact_location=location)
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def champion_version(client: Any, model_name: str) -> Any | None:
    """The ModelVersion behind `@champion`, or None when there is none yet."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        return None
