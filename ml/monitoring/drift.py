"""Drift with Evidently: a current window against a reference, per column and for the dataset.

`compute_drift` runs Evidently's data drift preset on two frames and writes the HTML report.
Evidently picks the test per column: a K-S p-value (drifted when below 0.05) while the reference
has at most 1000 rows, the normed Wasserstein distance (drifted when at least 0.1) above that.
The dataset drifts when the share of drifted features reaches `drift_share_threshold`.
Reading the windows and recording the outcome is ml.monitoring.monitor's (SQL in
ml.monitoring.store).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, TypedDict

import pandas as pd

log = logging.getLogger(__name__)


class FeatureDrift(TypedDict):
    drifted: bool
    score: float
    method: str
    threshold: float


@dataclass(frozen=True)
class DriftResult:
    n_features: int
    n_drifted_features: int
    share_drifted: float
    drift_detected: bool
    per_feature: dict[str, FeatureDrift]
    report_path: Path
    drift_share_threshold: float = 0.5
    # Set by run_drift: the monitoring.drift_runs row and the MLflow run holding the report.
    run_id: uuid.UUID | None = None
    mlflow_drift_run_id: str | None = None
    # Set by run_drift when the model has published enough scores before the current window.
    prediction: FeatureDrift | None = None

    @property
    def drifted_features(self) -> list[str]:
        return [name for name, drift in self.per_feature.items() if drift["drifted"]]

    def summary(self) -> str:
        verdict = "DRIFT" if self.drift_detected else "no drift"
        drifted = f" [{', '.join(self.drifted_features)}]" if self.drifted_features else ""
        return (
            f"drift: {self.n_drifted_features}/{self.n_features} features drifted"
            f" ({self.share_drifted:.0%}){drifted}, threshold {self.drift_share_threshold:.0%}"
            f" -> {verdict}; report: {self.report_path}"
        )


def compute_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: list[str],
    report_path: Path,
    drift_share_threshold: float = 0.5,
) -> DriftResult:
    """Evidently's data drift preset on the numeric `features`; saves the HTML to `report_path`."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    if not features:
        raise ValueError("compute_drift needs at least one feature")
    for name, frame in (("reference", reference), ("current", current)):
        missing = [f for f in features if f not in frame.columns]
        if missing:
            raise ValueError(f"{name} frame lacks feature columns {missing}")
        if frame.empty:
            raise ValueError(f"{name} frame has no rows")

    definition = DataDefinition(numerical_columns=list(features))
    # include_tests gives each column Evidently's own drifted/not-drifted verdict, which
    # depends on whether the chosen method is a p-value or a distance.
    report = Report(
        [DataDriftPreset(columns=list(features), drift_share=drift_share_threshold)],
        include_tests=True,
    )
    snapshot = report.run(
        current_data=Dataset.from_pandas(current[features], data_definition=definition),
        reference_data=Dataset.from_pandas(reference[features], data_definition=definition),
    )

    report_path = Path(report_path)
    report_path.parent.mkdir(parents=True, exist_ok=True)
    # Snapshot.save_html silently writes nothing when given a Path: it wants a str.
    snapshot.save_html(str(report_path))

    n_drifted, share, per_feature = _read_snapshot(snapshot.dict(), features)
    result = DriftResult(
        n_features=len(features),
        n_drifted_features=n_drifted,
        share_drifted=share,
        # Evidently's dataset-drift rule: the share reaching the threshold counts as drift.
        drift_detected=share >= drift_share_threshold,
        per_feature=per_feature,
        report_path=report_path,
        drift_share_threshold=drift_share_threshold,
    )
    log.info(result.summary())
    return result


def _read_snapshot(
    snapshot: dict[str, Any], features: list[str]
) -> tuple[int, float, dict[str, FeatureDrift]]:
    """Counts from DriftedColumnsCount, per column score from ValueDrift, verdicts from tests.

    Evidently 0.7's `Snapshot.dict()` is {"metrics": [{"id", "config": {"type", ...}, "value"}],
    "tests": [{"metric_config": {"metric_id"}, "status"}]}; metric types end in their class name.
    """
    counts: dict[str, Any] | None = None
    column_metrics: dict[str, dict[str, Any]] = {}
    for metric in snapshot.get("metrics", []):
        config = metric.get("config", {})
        kind = str(config.get("type", "")).rsplit(":", 1)[-1]
        if kind == "DriftedColumnsCount":
            counts = metric["value"]
        elif kind == "ValueDrift":
            column_metrics[config["column"]] = metric

    verdicts = {
        test["metric_config"]["metric_id"]: test["status"]
        for test in snapshot.get("tests", [])
        if test.get("metric_config", {}).get("metric_id")
    }

    if counts is None:
        raise RuntimeError("Evidently snapshot has no DriftedColumnsCount metric")
    if set(column_metrics) != set(features):
        raise RuntimeError(
            f"Evidently reported drift for {sorted(column_metrics)}, expected {sorted(features)}"
        )

    per_feature: dict[str, FeatureDrift] = {}
    for name in features:
        metric = column_metrics[name]
        status = verdicts.get(metric["id"])
        if status not in ("FAIL", "SUCCESS"):
            raise RuntimeError(f"Evidently gave no drift verdict for {name!r} (test: {status!r})")
        score = metric.get("value")
        per_feature[name] = FeatureDrift(
            drifted=status == "FAIL",
            score=float("nan") if score is None else float(score),
            method=str(metric["config"].get("method")),
            threshold=float(metric["config"].get("threshold")),
        )

    n_drifted = int(counts["count"])
    if n_drifted != sum(drift["drifted"] for drift in per_feature.values()):
        raise RuntimeError(
            f"Evidently counted {n_drifted} drifted columns but flagged "
            f"{[n for n, d in per_feature.items() if d['drifted']]}"
        )
    return n_drifted, float(counts["share"]), per_feature


def report_name(current_end: date, model_version: str | None, mlflow_run_id: str | None) -> str:
    """`drift_<date>[_v<version>][_<run id>].html`: two models on one day keep their reports."""
    name = f"drift_{current_end}"
    if model_version:
        name += f"_v{model_version}"
    if mlflow_run_id:
        name += f"_{mlflow_run_id[:12]}"
    return name + ".html"
