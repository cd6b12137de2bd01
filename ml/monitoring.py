"""Daily monitoring of the champion, and the decision to ask for retraining.

`monitor` runs after scoring: feature drift of the last `current_days` trading days against
the champion's training window (ml.drift, which also measures the drift of its published
scores), the live quality of the published signals as labels arrive (ml.live_quality), and
`decide_retraining`, which compares both with `Thresholds` and applies a cool-down read from
`monitoring.retrain_requests`. The monitoring DAG emits the RETRAIN_REQUEST asset only when
the decision says so, after `record_retrain_request`.
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import closing
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any

import psycopg2

from marketflow.settings import Settings, get_settings
from ml.drift import DriftResult, run_drift
from ml.live_quality import DEFAULT_LABEL, LiveQuality, live_quality
from ml.tracking import champion_version, configure

log = logging.getLogger(__name__)

CURRENT_DAYS = 60


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


@dataclass(frozen=True)
class Thresholds:
    """When to ask for retraining; every value can be set from the environment."""

    # Share of drifted features that counts as dataset drift.
    drift_share: float = field(
        default_factory=lambda: _env_float("MARKETFLOW_DRIFT_SHARE_THRESHOLD", 0.5)
    )
    # Drift of the published scores alone is a reason to retrain.
    retrain_on_prediction_drift: bool = field(
        default_factory=lambda: (
            os.environ.get("MARKETFLOW_RETRAIN_ON_PREDICTION_DRIFT", "1")
            not in ("0", "false", "no")
        )
    )
    min_live_ic: float = field(default_factory=lambda: _env_float("MARKETFLOW_MIN_LIVE_IC", 0.0))
    min_hit_rate: float = field(
        default_factory=lambda: _env_float("MARKETFLOW_MIN_LIVE_HIT_RATE", 0.45)
    )
    # Live quality is judged only once this many labelled days exist.
    min_live_days: int = field(default_factory=lambda: _env_int("MARKETFLOW_MIN_LIVE_DAYS", 10))
    live_window_days: int = field(
        default_factory=lambda: _env_int("MARKETFLOW_LIVE_WINDOW_DAYS", 20)
    )
    top_k: int = field(default_factory=lambda: _env_int("MARKETFLOW_LIVE_TOP_K", 10))
    current_days: int = field(
        default_factory=lambda: _env_int("MARKETFLOW_DRIFT_CURRENT_DAYS", CURRENT_DAYS)
    )
    # Days after a retraining request during which no new one is made.
    cooldown_days: int = field(
        default_factory=lambda: _env_int("MARKETFLOW_RETRAIN_COOLDOWN_DAYS", 5)
    )


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


def last_retrain_request(database_url: str, model_name: str) -> date | None:
    with closing(psycopg2.connect(database_url)) as conn, conn.cursor() as cur:
        cur.execute(
            "select max(run_date) from monitoring.retrain_requests where model_name = %s",
            (model_name,),
        )
        row = cur.fetchone()
    return row[0] if row else None


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
    with closing(psycopg2.connect(database_url)) as conn, conn, conn.cursor() as cur:
        cur.execute(
            """
            insert into monitoring.retrain_requests (run_date, model_name, model_version, reasons)
            values (%s, %s, %s, %s)
            """,
            (
                decision.run_date,
                decision.model_name,
                decision.model_version,
                json.dumps(decision.reasons),
            ),
        )


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


def _champion_context(settings: Settings) -> dict[str, Any]:
    """The champion's version, run, features, label and training window (tags, else params)."""
    client = configure(settings)
    champion = champion_version(client, settings.model_name)
    if champion is None:
        raise RuntimeError(f"model {settings.model_name!r} has no @champion: nothing to monitor")
    tags: dict[str, str] = dict(champion.tags or {})
    params = client.get_run(champion.run_id).data.params

    def pick(name: str) -> str | None:
        return tags.get(name) or params.get(name) or None

    start, end = pick("train_start"), pick("train_end")
    if not start or not end:
        raise RuntimeError(
            f"{settings.model_name} v{champion.version} has no train_start/train_end "
            "(tags or run params): no reference window"
        )
    seen = pick("test_end")
    features = [f for f in (pick("features") or "").split(",") if f]
    if not features:
        from ml.dataset import FEATURES

        features = list(FEATURES)
    return {
        "version": str(champion.version),
        "run_id": champion.run_id,
        "features": features,
        "label": pick("label") or DEFAULT_LABEL,
        "reference": (date.fromisoformat(start), date.fromisoformat(end)),
        "seen_until": date.fromisoformat(seen) if seen else None,
    }


def drift_for_champion(
    database_url: str,
    settings: Settings | None = None,
    run_date: date | None = None,
    current_days: int | None = None,
    thresholds: Thresholds | None = None,
) -> DriftResult:
    settings = settings or get_settings()
    thresholds = thresholds or Thresholds()
    return _champion_drift(
        database_url, settings, _champion_context(settings), thresholds, run_date, current_days
    )


def _champion_drift(
    database_url: str,
    settings: Settings,
    champion: dict[str, Any],
    thresholds: Thresholds,
    run_date: date | None,
    current_days: int | None = None,
) -> DriftResult:
    """Drift of the champion's own features: its training window against the last days."""
    return run_drift(
        database_url,
        reference_window=champion["reference"],
        current_days=current_days or thresholds.current_days,
        features=champion["features"],
        reports_dir=settings.reports_dir,
        model_name=settings.model_name,
        model_version=champion["version"],
        mlflow_run_id=champion["run_id"],
        run_date=run_date,
        drift_share_threshold=thresholds.drift_share,
        tracking_uri=settings.mlflow_tracking_uri,
    )


def monitor(
    database_url: str,
    settings: Settings | None = None,
    run_date: date | None = None,
    thresholds: Thresholds | None = None,
) -> MonitoringResult:
    """Drift, live quality and the retraining decision for the champion (see module doc)."""
    settings = settings or get_settings()
    thresholds = thresholds or Thresholds()
    champion = _champion_context(settings)
    drift = _champion_drift(database_url, settings, champion, thresholds, run_date)
    day = run_date or _drift_run_date(database_url, drift)
    quality = live_quality(
        database_url,
        settings.model_name,
        champion["version"],
        label=champion["label"],
        window_days=thresholds.live_window_days,
        top_k=thresholds.top_k,
        run_date=day,
    )
    reasons = retrain_reasons(drift, quality, thresholds)
    decision = decide_retraining(
        database_url,
        settings.model_name,
        champion["version"],
        day,
        reasons,
        thresholds,
        seen_until=champion["seen_until"],
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
    with closing(psycopg2.connect(database_url)) as conn, conn.cursor() as cur:
        cur.execute(
            "select run_date from monitoring.drift_runs where run_id = %s", (str(drift.run_id),)
        )
        row = cur.fetchone()
    if row is None:
        raise RuntimeError(f"drift run {drift.run_id} was not recorded")
    return row[0]  # type: ignore[no-any-return]
