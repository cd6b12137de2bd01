"""Drift with Evidently: a current window against a reference, per column and for the dataset.

`compute_drift` runs Evidently's data drift preset on two frames and writes the HTML report.
The test per column follows its type: the normed Wasserstein distance for continuous features,
PSI for discrete ones (see `compute_drift`). The dataset drifts when the share of drifted
features reaches `drift_share_threshold`.
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


# A feature with at most this many distinct values in the reference is discrete (a flag, a
# count, a bucket): PSI over its values, not a distance between continuous distributions.
DISCRETE_MAX_VALUES = 20
# Features the report shows Evidently's detail for (the furthest past their thresholds).
DETAIL_FEATURES = 20


def _ratio(drift: FeatureDrift) -> float:
    score, threshold = drift["score"], drift["threshold"]
    return score / threshold if threshold and score == score else 0.0


def _summary_html(
    per_feature: dict[str, FeatureDrift],
    ranked: list[str],
    detailed: list[str],
    share: float,
    drift_share: float,
) -> str:
    """The report's first screen: the verdict, then every feature (furthest past its threshold
    first) with its test, score and threshold."""
    import html

    drifted = sum(d["drifted"] for d in per_feature.values())
    verdict = "DRIFT" if share >= drift_share else "no drift"
    red = ' style="color:#b00"'
    rows = "".join(
        f"<tr{red if per_feature[f]['drifted'] else ''}>"
        f"<td>{html.escape(f)}</td><td>{html.escape(per_feature[f]['method'])}</td>"
        f"<td>{per_feature[f]['score']:.4g}</td><td>{per_feature[f]['threshold']:.4g}</td>"
        f"<td>{'drifted' if per_feature[f]['drifted'] else ''}</td>"
        f"<td>{'below' if f in detailed else ''}</td></tr>"
        for f in ranked
    )
    return (
        '<section id="marketflow-drift-summary" style="font-family:sans-serif;margin:16px">'
        f"<h2>{verdict}: {drifted} of {len(per_feature)} features drifted ({share:.0%}; "
        f"dataset drift at {drift_share:.0%})</h2>"
        f"<p>Evidently's detail below covers the {len(detailed)} features furthest past their "
        "thresholds, so its own &ldquo;Dataset Drift&rdquo; verdict is about those alone; the "
        "verdict above is over every feature, each in this table (and in "
        "monitoring.drift_features).</p>"
        '<details><summary>All features</summary><table border="1" cellpadding="3" '
        'style="border-collapse:collapse"><tr><th>feature</th><th>test</th><th>score</th>'
        f"<th>threshold</th><th>verdict</th><th>detail</th></tr>{rows}</table></details>"
        "</section>"
    )


def reference_thresholds(
    reference: pd.DataFrame,
    features: list[str],
    block_days: int,
    margin: float = 1.25,
    floor: float = 0.1,
) -> dict[str, float]:
    """Per continuous feature, the normed Wasserstein distance (Evidently's: the distance over
    the reference's standard deviation) at which the current window drifts: `margin` times the
    largest distance between a window of `block_days` consecutive trading days of the
    reference (windows half their length apart) and the rest of the reference, never
    below `floor`.

    A fixed threshold cannot serve both five symbols and five hundred: the distance of a
    month of data from a year of the same market falls with the rows in the month, and with
    the features' own persistence (a 20-day volatility moves slowly, a daily return does not).
    The reference's own months measure both, for each feature, at the current window's size."""
    from scipy.stats import wasserstein_distance

    dates = pd.Index(sorted(reference["trade_date"].unique()))
    stride = max(1, block_days // 2)
    blocks = [dates[i : i + block_days] for i in range(0, len(dates) - block_days + 1, stride)]
    thresholds: dict[str, float] = {}
    for name in features:
        values = reference[name].to_numpy(dtype="float64")
        scale = values.std()
        if not len(blocks) or not scale > 0:
            thresholds[name] = floor
            continue
        in_block = reference["trade_date"]
        # Each window against the rest of the reference: the current window is not part of
        # the reference either (a window inside it would look closer than it is).
        largest = 0.0
        for block in blocks:
            inside = in_block.isin(block).to_numpy()
            if inside.all() or not inside.any():
                continue
            largest = max(largest, wasserstein_distance(values[inside], values[~inside]) / scale)
        thresholds[name] = max(floor, margin * float(largest))
    return thresholds


def compute_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: list[str],
    report_path: Path,
    drift_share_threshold: float = 0.5,
    feature_threshold: float = 0.1,
    psi_threshold: float = 0.2,
    thresholds: dict[str, float] | None = None,
    by_type: bool = True,
) -> DriftResult:
    """Evidently's data drift preset on the numeric `features`; saves the HTML to `report_path`.

    The test per feature is chosen by its type, never by the sample size (Evidently's default
    switches to a K-S p-value below 1000 reference rows, which flags everything on a large
    sample): the normed Wasserstein distance for continuous features (drifted at
    `thresholds[feature]` when given, see `reference_thresholds`, else `feature_threshold`),
    PSI for discrete ones (at `psi_threshold`). `by_type=False` leaves the choice to
    Evidently (the published scores' drift, ml.monitoring.monitor.prediction_drift)."""
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

    discrete = [f for f in features if reference[f].nunique(dropna=True) <= DISCRETE_MAX_VALUES]
    per_column = {f: t for f, t in (thresholds or {}).items() if f in features}
    per_column.update({f: psi_threshold for f in discrete})

    def run(columns: list[str]) -> Any:
        definition = DataDefinition(numerical_columns=list(columns))
        preset = (
            DataDriftPreset(
                columns=list(columns),
                drift_share=drift_share_threshold,
                num_method="wasserstein",
                num_threshold=feature_threshold,
                per_column_method={f: "psi" for f in discrete if f in columns},
                per_column_threshold={f: t for f, t in per_column.items() if f in columns},
            )
            if by_type
            else DataDriftPreset(columns=list(columns), drift_share=drift_share_threshold)
        )
        # include_tests gives each column Evidently's own drifted/not-drifted verdict.
        return Report([preset], include_tests=True).run(
            current_data=Dataset.from_pandas(current[columns], data_definition=definition),
            reference_data=Dataset.from_pandas(reference[columns], data_definition=definition),
        )

    snapshot = run(list(features))
    n_drifted, share, per_feature = _read_snapshot(snapshot.dict(), features)
    # The report: our summary of every feature first, then Evidently's detail for the features
    # furthest past their thresholds (all 138 made a 13 MB page nobody scrolled).
    ranked = sorted(features, key=lambda f: -_ratio(per_feature[f]))
    detailed = ranked[:DETAIL_FEATURES]
    detail = snapshot if len(features) <= DETAIL_FEATURES else run(detailed)
    report_path = Path(report_path)
    report_path.parent.mkdir(parents=True, exist_ok=True)
    page = detail.get_html_str(as_iframe=False)
    summary = _summary_html(per_feature, ranked, detailed, share, drift_share_threshold)
    head, body_tag, rest = page.partition("<body")
    if body_tag:
        tag_end = rest.index(">") + 1
        page = head + body_tag + rest[:tag_end] + summary + rest[tag_end:]
    report_path.write_text(page, encoding="utf-8")

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
