"""Feature drift monitoring with Evidently: current trading days against a reference window.

`compute_drift` runs Evidently's data drift preset on two frames and writes the HTML report;
`run_drift` reads both windows from `marts.features_daily`, records the outcome in
`monitoring.drift_runs` (one row per run date and model, replaced on re-run) and, when given the
model's MLflow run, logs the report into a drift run of its own in the same experiment.

Evidently picks the test per column: a K-S p-value (drifted when below 0.05) while the reference
has at most 1000 rows, the normed Wasserstein distance (drifted when at least 0.1) above that.
The dataset drifts when the share of drifted features reaches `drift_share_threshold`.
"""

from __future__ import annotations

import logging
import math
import urllib.error
import urllib.request
import uuid
from contextlib import closing
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TypedDict
from urllib.parse import urlsplit

import pandas as pd
import psycopg2
from psycopg2 import sql
from psycopg2.extras import execute_values

log = logging.getLogger(__name__)

FEATURES_TABLE = sql.SQL("marts.features_daily")
MLFLOW_HEALTH_TIMEOUT_S = 5.0


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
) -> DriftResult:
    """Drift of the last `current_days` trading days (up to `run_date`) against `reference_window`.

    Writes `reports_dir/drift_<current end>_v<version>_<run id>.html` (see `report_name`), one
    row per feature in `monitoring.drift_features`, the drift of the model's published scores
    when it has a history (`_prediction_drift`), and replaces the `monitoring.drift_runs` row of
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

    with closing(psycopg2.connect(database_url)) as conn, conn:
        current_start, current_end = _current_window(conn, current_days, run_date)
        reference = _load_features(conn, features, reference_start, reference_end)
        current = _load_features(conn, features, current_start, current_end)
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
        "drift: reference %s..%s (%d rows), current %s..%s (%d rows)",
        reference_start,
        reference_end,
        len(reference),
        current_start,
        current_end,
        len(current),
    )

    run_date = run_date or current_end
    report_path = (
        Path(reports_dir) / report_name(current_end, model_version, mlflow_run_id)
    ).resolve()
    result = compute_drift(reference, current, features, report_path, drift_share_threshold)
    prediction = None
    if model_name and model_version:
        prediction = _prediction_drift(
            database_url, model_name, model_version, current_start, current_end, report_path
        )

    run_id = uuid.uuid4()
    with closing(psycopg2.connect(database_url)) as conn, conn, conn.cursor() as cur:
        # No unique key covers (run_date, model): serialise writers of the same key instead.
        cur.execute(
            "select pg_advisory_xact_lock(hashtextextended(%s, 0))",
            (f"monitoring.drift_runs|{run_date}|{model_name}|{model_version}",),
        )
        cur.execute(
            """
            delete from monitoring.drift_runs
            where run_date = %s
              and model_name is not distinct from %s
              and model_version is not distinct from %s
            """,
            (run_date, model_name, model_version),
        )
        cur.execute(
            """
            insert into monitoring.drift_runs (
                run_id, run_date, reference_start, reference_end, current_start, current_end,
                n_features, n_drifted_features, share_drifted, drift_detected, report_path,
                model_name, model_version, mlflow_run_id, prediction_drift_score,
                prediction_drifted
            ) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            """,
            (
                str(run_id),
                run_date,
                reference_start,
                reference_end,
                current_start,
                current_end,
                result.n_features,
                result.n_drifted_features,
                result.share_drifted,
                result.drift_detected,
                str(report_path),
                model_name,
                model_version,
                mlflow_run_id,
                prediction["score"] if prediction else None,
                prediction["drifted"] if prediction else None,
            ),
        )
        execute_values(
            cur,
            """
            insert into monitoring.drift_features
                (run_id, feature, drifted, score, method, threshold)
            values %s
            """,
            [
                (
                    str(run_id),
                    name,
                    drift["drifted"],
                    drift["score"] if math.isfinite(drift["score"]) else None,
                    drift["method"],
                    drift["threshold"],
                )
                for name, drift in result.per_feature.items()
            ],
        )
    result = replace(result, run_id=run_id, prediction=prediction)

    if mlflow_run_id:
        drift_run = _log_to_mlflow(
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


def report_name(current_end: date, model_version: str | None, mlflow_run_id: str | None) -> str:
    """`drift_<date>[_v<version>][_<run id>].html`: two models on one day keep their reports."""
    name = f"drift_{current_end}"
    if model_version:
        name += f"_v{model_version}"
    if mlflow_run_id:
        name += f"_{mlflow_run_id[:12]}"
    return name + ".html"


MIN_PREDICTION_REFERENCE_ROWS = 30

_SCORES_SQL = """
select score from signals.daily_signals
where model_name = %s and model_version = %s and trade_date between %s and %s
  and score = score and score not in ('Infinity', '-Infinity')
"""


def _prediction_drift(
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
    with closing(psycopg2.connect(database_url)) as conn, conn.cursor() as cur:
        cur.execute(
            _SCORES_SQL, (model_name, model_version, date.min, current_start - timedelta(days=1))
        )
        reference = [row[0] for row in cur.fetchall()]
        cur.execute(_SCORES_SQL, (model_name, model_version, current_start, current_end))
        current = [row[0] for row in cur.fetchall()]
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
    )
    drift = result.per_feature["score"]
    log.info("prediction drift: %s (%s %.4g)", drift["drifted"], drift["method"], drift["score"])
    return drift


def _current_window(conn: Any, current_days: int, up_to: date | None) -> tuple[date, date]:
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL(
                """
                select min(trade_date), max(trade_date)
                from (
                    select distinct trade_date
                    from {table}
                    where %(up_to)s::date is null or trade_date <= %(up_to)s::date
                    order by trade_date desc
                    limit %(days)s
                ) as last_days
                """
            ).format(table=FEATURES_TABLE),
            {"up_to": up_to, "days": current_days},
        )
        start, end = cur.fetchone()
    if end is None:
        bound = f" up to {up_to}" if up_to else ""
        raise ValueError(f"marts.features_daily has no trading days{bound}: no current window")
    return start, end


def _load_features(conn: Any, features: list[str], start: date, end: date) -> pd.DataFrame:
    """Rows of the window with every feature present; NULL features (warm-up days) are dropped."""
    columns = [sql.Identifier(f) for f in features]
    query = sql.SQL(
        """
        select symbol, trade_date, {columns}
        from {table}
        where trade_date between %s and %s and {not_null}
        order by trade_date, symbol
        """
    ).format(
        columns=sql.SQL(", ").join(columns),
        table=FEATURES_TABLE,
        not_null=sql.SQL(" and ").join(sql.SQL("{} is not null").format(c) for c in columns),
    )
    with conn.cursor() as cur:
        cur.execute(query, (start, end))
        rows = cur.fetchall()
    frame = pd.DataFrame(rows, columns=["symbol", "trade_date", *features])
    return frame.astype({f: "float64" for f in features})


def _mlflow_reachable(tracking_uri: str) -> bool:
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


def _log_to_mlflow(
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
    if not _mlflow_reachable(uri):
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
    return drift_run_id
