"""The features DAG asks for a training only while there is no champion."""

from __future__ import annotations

from pathlib import Path

from core.settings import Settings
from ml.registry.cadence import first_training_reason
from ml.registry.card import CHAMPION


def test_features_request_a_training_only_without_a_champion(
    ml_settings: Settings, mlflow_client, tmp_path: Path
) -> None:
    name = ml_settings.mlflow.model_name
    assert first_training_reason(ml_settings) == (
        f"model {name!r} has no @champion yet: training requested"
    )

    mlflow_client.create_registered_model(name)
    assert first_training_reason(ml_settings) is not None  # a model without a champion

    experiment = mlflow_client.create_experiment(f"cadence_{name}", str(tmp_path))
    run = mlflow_client.create_run(experiment)
    version = mlflow_client.create_model_version(name, f"runs:/{run.info.run_id}/model",
                                                 run.info.run_id)  # fmt: skip
    mlflow_client.set_registered_model_alias(name, CHAMPION, version.version)
    assert first_training_reason(ml_settings) is None  # ordinary days: no training
