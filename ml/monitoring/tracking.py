"""Monitoring's MLflow records: a `drift_<run_date>` run beside the model's training run with
the report, the drifted share and, later, live quality and the retrain decision."""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from datetime import date
from urllib.parse import urlsplit

from ml.monitoring.drift import DriftResult

log = logging.getLogger(__name__)

MLFLOW_HEALTH_TIMEOUT_S = 5.0


def mlflow_reachable(tracking_uri: str) -> bool:
    """A tracking server must answer /health; local stores (sqlite, files) always count."""
    if urlsplit(tracking_uri).scheme not in ("http", "https"):
        return True
    try:
        with urllib.request.urlopen(
            tracking_uri.rstrip("/") + "/health", timeout=MLFLOW_HEALTH_TIMEOUT_S
        ) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def log_drift_run(
    result: DriftResult,
    model_run_id: str,
    run_date: date,
    windows: dict[str, date],
    model_name: str | None,
    model_version: str | None,
    tracking_uri: str | None,
) -> str | None:
    """A fresh `drift_<run_date>` run beside the model's run; a re-run replaces the old one."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    uri = tracking_uri or mlflow.get_tracking_uri()
    if not mlflow_reachable(uri):
        log.warning("MLflow at %s does not answer; drift report not logged to MLflow", uri)
        return None
    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.get_run(model_run_id).info.experiment_id
    run_name = f"drift_{run_date}"

    previous = client.search_runs(
        [experiment_id],
        filter_string=(
            f"attributes.run_name = '{run_name}' "
            f"and tags.`marketflow.model_run_id` = '{model_run_id}'"
        ),
    )
    for old in previous:
        client.delete_run(old.info.run_id)

    tags = {
        "marketflow.kind": "drift",
        "marketflow.model_run_id": model_run_id,
        "marketflow.drift_runs_id": str(result.run_id),
        "marketflow.run_date": str(run_date),
    }
    if model_name:
        tags["marketflow.model_name"] = model_name
    if model_version:
        tags["marketflow.model_version"] = model_version
    run = client.create_run(experiment_id, run_name=run_name, tags=tags)
    drift_run_id = run.info.run_id
    try:
        timestamp = int(run.info.start_time)
        metrics = [
            Metric("share_drifted", result.share_drifted, timestamp, 0),
            Metric("n_drifted_features", result.n_drifted_features, timestamp, 0),
            Metric("drift_detected", float(result.drift_detected), timestamp, 0),
        ] + [
            Metric(f"drift_score.{name}", drift["score"], timestamp, 0)
            for name, drift in result.per_feature.items()
        ]
        params = [Param(key, str(value)) for key, value in windows.items()] + [
            Param("n_features", str(result.n_features)),
            Param("drift_share_threshold", str(result.drift_share_threshold)),
        ]
        client.log_batch(drift_run_id, metrics=metrics, params=params)
        if result.prediction is not None:
            client.log_metric(
                drift_run_id, "prediction_drift_score", result.prediction["score"], timestamp
            )
            client.log_metric(
                drift_run_id, "prediction_drifted", float(result.prediction["drifted"]), timestamp
            )
        client.log_artifact(drift_run_id, str(result.report_path), artifact_path="drift")
        predictions = result.report_path.with_name(result.report_path.stem + "_predictions.html")
        if result.prediction is not None and predictions.is_file():
            client.log_artifact(drift_run_id, str(predictions), artifact_path="drift")
    except Exception:
        client.set_terminated(drift_run_id, status="FAILED")
        raise
    client.set_terminated(drift_run_id)
    log.info(
        "drift: logged to MLflow run %s (%s) in experiment %s",
        drift_run_id,
        run_name,
        experiment_id,
    )
    return str(drift_run_id)
