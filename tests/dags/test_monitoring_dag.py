"""The monitoring DAG through dag.test(): RETRAIN_REQUEST is emitted when live quality decays,
and not again within the cool-down."""

from __future__ import annotations

import uuid

from core.settings import Settings
from tests.helpers import asset_events, query
from tests.ml.monitoring.test_monitoring import FEATURES, TRAIN, build_market, register_champion


def _state(run, task_id: str) -> str:
    return str(next(ti.state for ti in run.get_task_instances() if ti.task_id == task_id))


def test_decay_requests_retraining_once_per_cool_down(
    dag_runner, make_database, mlflow_store, monkeypatch
):
    url = make_database()
    build_market(url, good_signals=False, shift_features=False)
    env = {
        **mlflow_store,
        "MARKETFLOW_DATABASE_URL": url,
        "MARKETFLOW_MODEL_NAME": f"signal_{uuid.uuid4().hex[:8]}",
        "MARKETFLOW_DRIFT_CURRENT_DAYS": "20",
        "MARKETFLOW_LIVE_TOP_K": "4",
        "MARKETFLOW_RETRAIN_COOLDOWN_DAYS": "5",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    register_champion(
        settings,
        tags={"features": ",".join(FEATURES)},
        params={"train_start": str(TRAIN[0]), "train_end": str(TRAIN[1])},
    )
    query(
        url,
        f"update signals.daily_signals set model_name = '{settings.mlflow.model_name}' returning 1",
    )
    dag_runner.configure(**env)
    events = asset_events("retrain_request")

    first = dag_runner("marketflow_monitoring", retries=0)
    assert str(first.state) == "success"
    assert _state(first, "request_retraining") == "success"
    assert asset_events("retrain_request") == events + 1
    ((reasons,),) = query(url, "select reasons::text from monitoring.retrain_requests")
    assert "live IC" in reasons
    # The decision went out through the notification channel (the record, and SMTP if set).
    ((kind, dag_id, task_id, message),) = query(
        url, "select kind, dag_id, task_id, message from monitoring.notifications"
    )
    assert (kind, dag_id, task_id) == ("retrain_request", "marketflow_monitoring",
                                       "request_retraining")  # fmt: skip
    assert "live IC" in message

    again = dag_runner("marketflow_monitoring", retries=0)
    assert str(again.state) == "success"
    assert _state(again, "request_retraining") == "skipped"  # the cool-down: no event
    assert asset_events("retrain_request") == events + 1
    assert query(url, "select count(*) from monitoring.retrain_requests") == [(1,)]
    assert query(url, "select count(*) from monitoring.live_quality") == [(1,)]
