"""The features DAG asks for a training only while there is no champion, and only once."""

from __future__ import annotations

from pathlib import Path

from core.settings import Settings
from ml.registry.cadence import request_first_training
from ml.registry.card import CHAMPION
from tests.helpers import query


def test_features_request_one_first_training_and_none_once_a_champion_exists(
    ml_settings: Settings, mlflow_client, make_database, tmp_path: Path
) -> None:
    url = make_database()
    name = ml_settings.mlflow.model_name
    assert request_first_training(url, ml_settings) == (
        True, f"model {name!r} has no @champion yet: training requested"
    )  # fmt: skip
    assert query(url, "select model_name, model_version, reasons::text from"
                      " monitoring.retrain_requests") == [(name, None, '["no champion yet"]')]  # fmt: skip

    # The next features runs (a backfill makes many) wait for that training.
    again, why = request_first_training(url, ml_settings)
    assert not again and why.startswith(f"a first training of {name!r} was requested at")
    assert query(url, "select count(*) from monitoring.retrain_requests") == [(1,)]

    mlflow_client.create_registered_model(name)
    experiment = mlflow_client.create_experiment(f"cadence_{name}", str(tmp_path))
    run = mlflow_client.create_run(experiment)
    version = mlflow_client.create_model_version(name, f"runs:/{run.info.run_id}/model",
                                                 run.info.run_id)  # fmt: skip
    mlflow_client.set_registered_model_alias(name, CHAMPION, version.version)
    query(url, "delete from monitoring.retrain_requests returning 1")
    assert request_first_training(url, ml_settings)[0] is False  # ordinary days: no training
    assert query(url, "select count(*) from monitoring.retrain_requests") == [(0,)]
