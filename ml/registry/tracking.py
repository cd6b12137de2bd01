"""MLflow plumbing: the tracking URI and an experiment with a sane artifact location."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from core.settings import Settings, environment, get_settings

log = logging.getLogger(__name__)

# The MLflow UI opens an experiment on the view of its kind: model development (runs, metrics,
# models), not the GenAI overview (traces) it shows an untagged experiment.
EXPERIMENT_KIND = "mlflow.experimentKind"
MODEL_DEVELOPMENT = "custom_model_development"
EXPERIMENT_TAGS = {
    EXPERIMENT_KIND: MODEL_DEVELOPMENT,
    "mlflow.note.content": (
        "MarketFlow's trading-signal models: one parent run per training (walk-forward of the "
        "model zoo, the gate's decision), the registered model's versions carry their model "
        "card as description."
    ),
}


def configure(settings: Settings | None = None) -> Any:
    """Point MLflow at the configured store and return an MlflowClient."""
    import mlflow
    from mlflow import MlflowClient

    settings = settings or get_settings()
    mlflow.set_tracking_uri(settings.mlflow.tracking_uri)
    mlflow.set_registry_uri(settings.mlflow.tracking_uri)
    return MlflowClient(settings.mlflow.tracking_uri, settings.mlflow.tracking_uri)


def ensure_experiment(settings: Settings | None = None) -> str:
    """Experiment id; created with a local artifact folder when there is no tracking server."""
    import mlflow

    settings = settings or get_settings()
    client = configure(settings)
    exp = client.get_experiment_by_name(settings.mlflow.experiment)
    if exp is not None:
        if exp.tags.get(EXPERIMENT_KIND) != MODEL_DEVELOPMENT:  # made by an older version
            for key, value in EXPERIMENT_TAGS.items():
                client.set_experiment_tag(exp.experiment_id, key, value)
        mlflow.set_experiment(experiment_id=exp.experiment_id)
        return str(exp.experiment_id)
    location = None
    if not settings.mlflow.tracking_uri.startswith("http"):
        # Without a server, MLflow would write artifacts to ./mlruns of whatever cwd we have.
        settings.artifact_root.mkdir(parents=True, exist_ok=True)
        location = settings.artifact_root.resolve().as_uri()
    exp_id = client.create_experiment(
        settings.mlflow.experiment, artifact_location=location, tags=EXPERIMENT_TAGS
    )
    mlflow.set_experiment(experiment_id=exp_id)
    return str(exp_id)


@contextmanager
def reader_identity(settings: Settings | None = None) -> Iterator[None]:
    """Talk to MLflow as the configured read-only identity inside the block (when one is
    configured): batch scoring loads the champion with it, so a scoring task cannot move an
    alias or register a version even if its code tried. MLflow reads the credentials from
    the environment on every request; they are restored on the way out."""
    settings = settings or get_settings()
    user, password = settings.mlflow.reader_username, settings.mlflow.reader_password
    if not user:
        yield
        return
    with environment({"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": password}):
        yield
