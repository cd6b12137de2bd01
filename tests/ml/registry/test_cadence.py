"""The features DAG asks for a training only while there is no champion (once), or after a
data correction that rewrote the champion's training data far back (once)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from core.settings import Settings
from ingest.loader import ingest
from ml.registry.cadence import request_training
from ml.registry.card import CHAMPION
from tests.helpers import query


def _champion(mlflow_client, name: str, tmp_path: Path, tags: dict[str, str] | None = None):
    mlflow_client.create_registered_model(name)
    experiment = mlflow_client.create_experiment(f"cadence_{name}", str(tmp_path))
    run = mlflow_client.create_run(experiment)
    version = mlflow_client.create_model_version(name, f"runs:/{run.info.run_id}/model",
                                                 run.info.run_id, tags=tags)  # fmt: skip
    mlflow_client.set_registered_model_alias(name, CHAMPION, version.version)
    return version


def _rebuilt(url: str, rebuilt_from: str | None) -> None:
    """What dbt/macros/rebuild_log.sql records for an incremental build of features_daily."""
    query(url, "create table if not exists monitoring.dbt_rebuilds (invocation_id text not null,"
          " model_name text not null, rebuilt_from date, started_at timestamptz not null default"
          " clock_timestamp(), tests_passed boolean, primary key (invocation_id, model_name))")  # fmt: skip
    query(url, "insert into monitoring.dbt_rebuilds (invocation_id, model_name, rebuilt_from)"
          " values (gen_random_uuid()::text, 'features_daily', %s)", (rebuilt_from,))  # fmt: skip


def test_features_request_one_first_training_and_none_once_a_champion_exists(
    ml_settings: Settings, mlflow_client, make_database, tmp_path: Path
) -> None:
    url = make_database()
    name = ml_settings.mlflow.model_name
    assert request_training(url, ml_settings) == (
        True, f"model {name!r} has no @champion yet: training requested"
    )  # fmt: skip
    assert query(url, "select model_name, model_version, reasons::text from"
                      " monitoring.retrain_requests") == [(name, None, '["no champion yet"]')]  # fmt: skip

    # The next features runs (a backfill makes many) wait for that training.
    again, why = request_training(url, ml_settings)
    assert not again and why.startswith(f"a first training of {name!r} was requested at")
    assert query(url, "select count(*) from monitoring.retrain_requests") == [(1,)]

    _champion(mlflow_client, name, tmp_path)
    query(url, "delete from monitoring.retrain_requests returning 1")
    assert request_training(url, ml_settings)[0] is False  # ordinary days: no training
    assert query(url, "select count(*) from monitoring.retrain_requests") == [(0,)]


def test_a_correction_far_back_in_the_champions_data_requests_one_retrain(
    ml_settings: Settings, mlflow_client, make_database, tmp_path: Path
) -> None:
    url = make_database()
    ingest(url, "sample", ["AAPL"], date(2012, 1, 3), date(2012, 12, 31))
    name = ml_settings.mlflow.model_name
    version = _champion(mlflow_client, name, tmp_path, {"test_end": "2012-12-20"})
    usual = "a champion exists: training waits for its weekly run or a retrain request"

    # A daily run: the new day is after what the champion saw.
    _rebuilt(url, "2012-12-31")
    assert request_training(url, ml_settings) == (False, usual)
    # The look-back rewrote a day the champion saw, but a recent one (within 30 days).
    _rebuilt(url, "2012-12-14")
    requested, why = request_training(url, ml_settings)
    assert not requested and "the usual look-back" in why, why
    assert query(url, "select count(*) from monitoring.retrain_requests") == [(0,)]

    # A vendor re-delivered March: the champion learned from data that changed.
    _rebuilt(url, "2012-03-01")
    requested, why = request_training(url, ml_settings)
    assert requested, why
    reason = (f"data corrected back to 2012-03-01: v{version.version} was trained on data up"
              " to 2012-12-20 that has since changed")  # fmt: skip
    assert why == f"retrain requested: {reason}"
    assert query(url, "select model_version, reasons->>0 from monitoring.retrain_requests") == [
        (str(version.version), reason)
    ]
    # The features runs after it (the same correction, or a backfill's many) wait for it.
    _rebuilt(url, "2012-02-01")
    requested, why = request_training(url, ml_settings)
    assert not requested and why.startswith("a retrain was requested at"), why
    assert query(url, "select count(*) from monitoring.retrain_requests") == [(1,)]
