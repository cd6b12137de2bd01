"""Daily monitoring of the champion, and the decision to ask for retraining.

`monitor` runs after scoring: feature drift of the last `current_days` trading days against
the champion's training window (`run_drift`, which also measures the drift of its published
scores), the live quality of the published signals as labels arrive (ml.monitoring
.live_quality), and the retrain rule (ml.monitoring.retrain), which compares both with
`Thresholds` (from the settings) and applies a cool-down. The monitoring DAG emits the
RETRAIN_REQUEST asset only when the decision says so, after `record_retrain_request`.

`run_drift` reads both windows from `marts.features_daily`, records the outcome in
`monitoring.drift_runs` (one row per run date and model, replaced on re-run) and, when given the
model's MLflow run, logs the report into a drift run of its own in the same experiment.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from core.settings import Settings, get_settings
from ml.data.handler import FEATURES
from ml.monitoring import store
from ml.monitoring.drift import (
    DriftResult,
    FeatureDrift,
    compute_drift,
    reference_thresholds,
    report_name,
)
from ml.monitoring.live_quality import DEFAULT_LABEL, LiveQuality, live_quality
from ml.monitoring.retrain import Decision, Thresholds, decide_retraining, retrain_reasons
from ml.monitoring.tracking import log_drift_run
from ml.registry.card import champion_card
from ml.registry.tracking import configure

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChampionContext:
    """What monitoring needs of the champion: read from its card (tags, else run params)."""

    version: str
    run_id: str
    features: list[str]
    label: str
    reference: tuple[date, date]
    seen_until: date | None


def run_drift(
    database_url: str,
    reference_window: tuple[date, date],
    current_days: int,
    features: list[str],
    reports_dir: Path,
    model_name: str | None,
    model_version: str | None,
    mlflow_run_id: str | None,
    run_date: date | None = None,
    drift_share_threshold: float = 0.5,
    tracking_uri: str | None = None,
    reference_rows: int = 0,
    feature_threshold: float = 0.1,
    psi_threshold: float = 0.2,
    threshold_margin: float | None = 1.25,
) -> DriftResult:
    """Drift of the last `current_days` trading days (up to `run_date`) against `reference_window`
    (a fixed sample of about `reference_rows` of its rows; 0: all of them).

    Writes `reports_dir/drift_<current end>_v<version>_<run id>.html` (see `report_name`), one
    row per feature in `monitoring.drift_features`, the drift of the model's published scores
    when it has a history (`prediction_drift`), and replaces the `monitoring.drift_runs` row of
    (`run_date`, model), `run_date` defaulting to the last current trading day. With
    `mlflow_run_id` (the model's training run) the report and the drifted share go to a new run
    `drift_<run_date>` in that run's experiment, when the tracking server answers; `tracking_uri`
    defaults to MLflow's current one (`MLFLOW_TRACKING_URI` or `mlflow.set_tracking_uri`).
    """
    reference_start, reference_end = reference_window
    if reference_start > reference_end:
        raise ValueError(f"reference window {reference_start}..{reference_end} is empty")
    if current_days < 1:
        raise ValueError(f"current_days must be at least 1, got {current_days}")
    if not features:
        raise ValueError("run_drift needs at least one feature")

    (current_start, current_end), reference, current = store.read_windows(
        database_url, features, reference_window, current_days, run_date, reference_rows
    )
    if reference.empty:
        raise ValueError(
            f"no rows with all of {features} in marts.features_daily for the reference window "
            f"{reference_start}..{reference_end}"
        )
    if current.empty:
        raise ValueError(
            f"no rows with all of {features} in marts.features_daily for the current window "
            f"{current_start}..{current_end}"
        )
    if current_start <= reference_end:
        log.warning(
            "current window %s..%s overlaps the reference window %s..%s",
            current_start,
            current_end,
            reference_start,
            reference_end,
        )
    log.info(
        "drift: reference %s..%s (%d rows%s), current %s..%s (%d rows)",
        reference_start,
        reference_end,
        len(reference),
        f", a fixed sample of about {reference_rows}" if reference_rows else "",
        current_start,
        current_end,
        len(current),
    )

    run_date = run_date or current_end
    report_path = (
        Path(reports_dir) / report_name(current_end, model_version, mlflow_run_id)
    ).resolve()
    # Each continuous feature's threshold from the reference's own months (None: the fixed
    # `feature_threshold` for every feature).
    thresholds = None
    if threshold_margin is not None:
        thresholds = reference_thresholds(reference, features, current_days, threshold_margin,
                                          floor=feature_threshold)  # fmt: skip
    result = compute_drift(reference, current, features, report_path, drift_share_threshold,
                           feature_threshold, psi_threshold, thresholds)  # fmt: skip
    prediction = None
    if model_name and model_version:
        prediction = prediction_drift(
            database_url, model_name, model_version, current_start, current_end, report_path
        )

    run_id = store.record_drift_run(
        database_url,
        run_date=run_date,
        reference_window=(reference_start, reference_end),
        current_window=(current_start, current_end),
        result=result,
        model_name=model_name,
        model_version=model_version,
        mlflow_run_id=mlflow_run_id,
        prediction=prediction,
    )
    result = replace(result, run_id=run_id, prediction=prediction)

    if mlflow_run_id:
        drift_run = log_drift_run(
            result,
            mlflow_run_id,
            run_date,
            windows={
                "reference_start": reference_start,
                "reference_end": reference_end,
                "current_start": current_start,
                "current_end": current_end,
            },
            model_name=model_name,
            model_version=model_version,
            tracking_uri=tracking_uri,
        )
        result = replace(result, mlflow_drift_run_id=drift_run)
    return result


MIN_PREDICTION_REFERENCE_ROWS = 30


def prediction_drift(
    database_url: str,
    model_name: str,
    model_version: str,
    current_start: date,
    current_end: date,
    features_report: Path,
) -> FeatureDrift | None:
    """Drift of the published scores: the current window against this version's earlier ones.

    None when the version has published fewer than MIN_PREDICTION_REFERENCE_ROWS scores before
    the current window (a freshly promoted model has no history to compare with yet).
    """
    reference = store.published_scores(
        database_url, model_name, model_version, date.min, current_start - timedelta(days=1)
    )
    current = store.published_scores(
        database_url, model_name, model_version, current_start, current_end
    )
    if len(reference) < MIN_PREDICTION_REFERENCE_ROWS or not current:
        log.info(
            "prediction drift: %d reference and %d current scores for %s v%s; not computed",
            len(reference),
            len(current),
            model_name,
            model_version,
        )
        return None
    result = compute_drift(
        pd.DataFrame({"score": reference}),
        pd.DataFrame({"score": current}),
        ["score"],
        features_report.with_name(features_report.stem + "_predictions.html"),
        by_type=False,
    )
    drift = result.per_feature["score"]
    log.info("prediction drift: %s (%s %.4g)", drift["drifted"], drift["method"], drift["score"])
    return drift


@dataclass(frozen=True)
class MonitoringResult:
    drift: DriftResult
    quality: LiveQuality
    decision: Decision

    def as_xcom(self) -> dict[str, Any]:
        """Small, JSON-able values for the DAG's next task."""
        decision = asdict(self.decision)
        decision["run_date"] = self.decision.run_date.isoformat()
        return {
            "drift_detected": self.drift.drift_detected,
            "share_drifted": self.drift.share_drifted,
            "report_path": str(self.drift.report_path),
            "live_ic": self.quality.ic,
            "live_hit_rate": self.quality.hit_rate,
            "decision": decision,
        }


def _champion_context(settings: Settings) -> ChampionContext:
    """The champion's version, run, features, label and training window."""
    card = champion_card(configure(settings), settings.mlflow.model_name)
    if card is None:
        raise RuntimeError(
            f"model {settings.mlflow.model_name!r} has no @champion: nothing to monitor"
        )
    if card.reference_window is None:
        raise RuntimeError(
            f"{settings.mlflow.model_name} v{card.version} has no train_start/train_end "
            "(tags or run params): no reference window"
        )
    return ChampionContext(
        version=card.version,
        run_id=card.run_id,
        features=list(card.features) or list(FEATURES),
        label=card.label or DEFAULT_LABEL,
        reference=card.reference_window,
        seen_until=card.test_end,
    )


def drift_for_champion(
    database_url: str,
    settings: Settings | None = None,
    run_date: date | None = None,
    current_days: int | None = None,
    thresholds: Thresholds | None = None,
) -> DriftResult:
    settings = settings or get_settings()
    thresholds = thresholds or Thresholds.from_settings(settings.monitoring)
    return _champion_drift(
        database_url, settings, _champion_context(settings), thresholds, run_date, current_days
    )


def _champion_drift(
    database_url: str,
    settings: Settings,
    champion: ChampionContext,
    thresholds: Thresholds,
    run_date: date | None,
    current_days: int | None = None,
) -> DriftResult:
    """Drift of the champion's own features: the end of its training window against the last
    trading days."""
    return run_drift(
        database_url,
        reference_window=reference_window(champion.reference, thresholds.reference_days),
        current_days=current_days or thresholds.current_days,
        features=champion.features,
        reports_dir=settings.reports_dir,
        model_name=settings.mlflow.model_name,
        model_version=champion.version,
        mlflow_run_id=champion.run_id,
        run_date=run_date,
        drift_share_threshold=thresholds.drift_share,
        tracking_uri=settings.mlflow.tracking_uri,
        reference_rows=settings.monitoring.reference_rows,
        feature_threshold=thresholds.feature_threshold,
        psi_threshold=thresholds.psi_threshold,
        threshold_margin=thresholds.threshold_margin,
    )


def reference_window(training: tuple[date, date], days: int) -> tuple[date, date]:
    """The last `days` calendar days of the training window (all of it when `days` is 0 or
    the window is shorter)."""
    start, end = training
    if days and end - timedelta(days=days) > start:
        start = end - timedelta(days=days)
    return start, end


def monitor(
    database_url: str,
    settings: Settings | None = None,
    run_date: date | None = None,
    thresholds: Thresholds | None = None,
) -> MonitoringResult:
    """Drift, live quality and the retraining decision for the champion (see module doc)."""
    settings = settings or get_settings()
    thresholds = thresholds or Thresholds.from_settings(settings.monitoring)
    champion = _champion_context(settings)
    drift = _champion_drift(database_url, settings, champion, thresholds, run_date)
    day = run_date or _drift_run_date(database_url, drift)
    quality = live_quality(
        database_url,
        settings.mlflow.model_name,
        champion.version,
        label=champion.label,
        window_days=thresholds.live_window_days,
        top_k=thresholds.top_k,
        run_date=day,
    )
    reasons = retrain_reasons(drift, quality, thresholds)
    decision = decide_retraining(
        database_url,
        settings.mlflow.model_name,
        champion.version,
        day,
        reasons,
        thresholds,
        seen_until=champion.seen_until,
    )
    log.info(drift.summary())
    log.info(quality.summary())
    log.info(decision.message)
    if drift.mlflow_drift_run_id:
        _log_to_drift_run(settings, drift.mlflow_drift_run_id, quality, decision)
    return MonitoringResult(drift, quality, decision)


def _log_to_drift_run(
    settings: Settings, run_id: str, quality: LiveQuality, decision: Decision
) -> None:
    """Live quality and the decision beside the drift metrics, in the drift run of the day."""
    client = configure(settings)
    metrics = {"live_ic": quality.ic, "live_hit_rate": quality.hit_rate,
               "live_top_k_return": quality.top_k_return}  # fmt: skip
    for name, value in metrics.items():
        if value is not None:
            client.log_metric(run_id, name, value)
    client.log_metric(run_id, "live_days", quality.n_days)
    client.set_tag(run_id, "marketflow.retrain", str(decision.retrain).lower())
    client.set_tag(run_id, "marketflow.retrain_reason", decision.message[:5000])


def _drift_run_date(database_url: str, drift: DriftResult) -> date:
    return store.drift_run_date(database_url, drift.run_id)


__all__ = ["ChampionContext", "MonitoringResult", "drift_for_champion", "monitor", "run_drift"]
