"""The retrain rule: which thresholds drift and live quality crossed, and whether that asks for
a retraining (cool-down read from `monitoring.retrain_requests`; no retrain on data the
champion has already seen). Thresholds come from the settings' monitoring section."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, timedelta
from typing import Any

from core.settings import MonitoringSettings
from ml.monitoring.drift import DriftResult
from ml.monitoring.live_quality import LiveQuality
from ml.monitoring.store import last_retrain_request
from ml.monitoring.store import record_retrain_request as _record


def _default(name: str) -> Any:
    return MonitoringSettings.model_fields[name].default


@dataclass(frozen=True)
class Thresholds:
    """When to ask for retraining (defaults: the settings' defaults; see
    core.settings.MonitoringSettings for each value's meaning)."""

    drift_share: float = _default("drift_share")
    retrain_on_prediction_drift: bool = _default("retrain_on_prediction_drift")
    min_live_ic: float = _default("min_live_ic")
    min_hit_rate: float = _default("min_hit_rate")
    min_live_days: int = _default("min_live_days")
    live_window_days: int = _default("live_window_days")
    top_k: int = _default("top_k")
    current_days: int = _default("current_days")
    reference_days: int = _default("reference_days")
    feature_threshold: float = _default("feature_threshold")
    threshold_margin: float = _default("threshold_margin")
    psi_threshold: float = _default("psi_threshold")
    # Days after a retraining request during which no new one is made.
    cooldown_days: int = _default("cooldown_days")

    @classmethod
    def from_settings(cls, monitoring: MonitoringSettings) -> Thresholds:
        return cls(**{f.name: getattr(monitoring, f.name) for f in fields(cls)})


@dataclass(frozen=True)
class Decision:
    retrain: bool
    reasons: list[str]
    message: str
    run_date: date
    model_name: str
    model_version: str | None


def retrain_reasons(
    drift: DriftResult | None, quality: LiveQuality | None, thresholds: Thresholds
) -> list[str]:
    """Every threshold crossed, in words."""
    reasons: list[str] = []
    if drift is not None:
        if drift.share_drifted >= thresholds.drift_share:
            reasons.append(
                f"feature drift: {drift.n_drifted_features}/{drift.n_features} features drifted "
                f"({drift.share_drifted:.0%} >= {thresholds.drift_share:.0%}): "
                f"{_some(drift.drifted_features)}"
            )
        if (
            thresholds.retrain_on_prediction_drift
            and drift.prediction
            and drift.prediction["drifted"]
        ):
            reasons.append(
                f"prediction drift: published scores drifted ({drift.prediction['method']} "
                f"{drift.prediction['score']:.4g})"
            )
    if quality is not None and quality.n_days >= thresholds.min_live_days:
        if quality.ic is not None and quality.ic < thresholds.min_live_ic:
            reasons.append(
                f"live IC {quality.ic:.4f} < {thresholds.min_live_ic} over {quality.n_days} days"
            )
        if quality.hit_rate is not None and quality.hit_rate < thresholds.min_hit_rate:
            reasons.append(
                f"live hit rate {quality.hit_rate:.2%} < {thresholds.min_hit_rate:.2%} "
                f"over {quality.n_days} days"
            )
    return reasons


def _some(names: list[str], shown: int = 10) -> str:
    """The first `shown` names, and how many more: a reason stays one readable log line."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def decide_retraining(
    database_url: str,
    model_name: str,
    model_version: str | None,
    run_date: date,
    reasons: list[str],
    thresholds: Thresholds,
    seen_until: date | None = None,
) -> Decision:
    """Retrain when a threshold is crossed, the last request is older than the cool-down, and
    there is data the champion has not seen (`seen_until`: the last date its training run
    read, its `test_end`): retraining on the same data would only rebuild the same model."""

    def decision(retrain: bool, message: str) -> Decision:
        return Decision(retrain, reasons, message, run_date, model_name, model_version)

    if not reasons:
        return decision(False, "no retraining: no threshold crossed")
    if seen_until is not None and run_date <= seen_until:
        return decision(
            False,
            f"no retraining: v{model_version} was trained and evaluated on data up to "
            f"{seen_until}, so a retrain on data to {run_date} would learn nothing new; "
            f"would have because {'; '.join(reasons)}",
        )
    last = last_retrain_request(database_url, model_name)
    if last is not None and run_date < last + timedelta(days=thresholds.cooldown_days):
        return decision(
            False,
            f"no retraining: cool-down of {thresholds.cooldown_days} days since the request "
            f"of {last} (next from {last + timedelta(days=thresholds.cooldown_days)}); "
            f"would have because {'; '.join(reasons)}",
        )
    return decision(True, f"retraining requested because {'; '.join(reasons)}")


def record_retrain_request(database_url: str, decision: Decision) -> None:
    _record(
        database_url,
        decision.run_date,
        decision.model_name,
        decision.model_version,
        decision.reasons,
    )
