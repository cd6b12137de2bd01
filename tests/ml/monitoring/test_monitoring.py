"""ml/live_quality.py and ml/monitoring.py against a real PostgreSQL database, real Evidently and
a real MLflow registry: live quality of published signals, thresholds, the cool-down."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg2
import pytest
from psycopg2.extras import execute_values

from core.settings import Settings
from ml.monitoring.live_quality import live_quality, measure
from ml.monitoring.monitor import monitor
from ml.monitoring.retrain import (
    Thresholds,
    decide_retraining,
    record_retrain_request,
    retrain_reasons,
)

FEATURES = ["ret_1d", "vol_20d"]
SYMBOLS = [f"S{i:02d}" for i in range(12)]
DAYS = list(pd.bdate_range("2024-01-01", periods=90).date)
TRAIN = (DAYS[0], DAYS[49])
MODEL = "signal_monitoring"


def build_market(url: str, *, good_signals: bool, shift_features: bool) -> None:
    """features_daily, labels_daily and published signals whose scores do or do not predict."""
    rng = np.random.default_rng(0)
    features, labels, signals = [], [], []
    for i, day in enumerate(DAYS):
        realised = rng.normal(0, 0.02, len(SYMBOLS))
        shift = 2.0 if shift_features and i >= len(DAYS) - 20 else 0.0
        for j, symbol in enumerate(SYMBOLS):
            features.append((symbol, day, *(rng.normal() + shift for _ in FEATURES)))
            labels.append((symbol, day, float(realised[j])))
        scores = realised if good_signals else -realised
        ranks = (-scores).argsort().argsort() + 1
        for j, symbol in enumerate(SYMBOLS):
            side = "long" if ranks[j] <= 4 else "short" if ranks[j] > 8 else "neutral"
            signals.append((day, symbol, float(scores[j]), int(ranks[j]), side, MODEL, "1", "run"))
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "create schema if not exists marts;"
            "create table marts.features_daily (symbol text, trade_date date, ret_1d float8,"
            " vol_20d float8, primary key (symbol, trade_date));"
            "create table marts.labels_daily (symbol text, trade_date date, fwd_ret_1d float8,"
            " primary key (symbol, trade_date))"
        )
        execute_values(cur, "insert into marts.features_daily values %s", features)
        execute_values(cur, "insert into marts.labels_daily values %s", labels)
        execute_values(cur, "insert into signals.daily_signals values %s", signals)
    conn.close()


def test_measure_on_a_hand_made_day() -> None:
    frame = pd.DataFrame(
        {
            "trade_date": [date(2024, 1, 2)] * 4,
            "symbol": list("ABCD"),
            "score": [4.0, 3.0, 2.0, 1.0],
            "rank": [1, 2, 3, 4],
            "signal": ["long", "neutral", "neutral", "short"],
            "realised": [0.03, 0.01, -0.01, 0.02],
        }
    )
    ic, hit_rate, top = measure(frame, top_k=2)
    assert ic == pytest.approx(0.4)  # ranks (4,3,2,1) vs (4,2,1,3)
    assert hit_rate == pytest.approx(0.5)  # the long hit, the short missed
    assert top == pytest.approx(0.02)


@pytest.mark.parametrize("good", [True, False])
def test_live_quality_of_published_signals(make_database: Callable[[], str], good: bool) -> None:
    url = make_database()
    build_market(url, good_signals=good, shift_features=False)
    quality = live_quality(url, MODEL, "1", window_days=20, top_k=4)
    assert quality.n_days == 20
    assert (quality.window_start, quality.window_end) == (DAYS[-20], DAYS[-1])
    assert quality.run_date == DAYS[-1]
    if good:
        # A perfect ranking still "misses" where a top name fell on a day when most fell.
        assert quality.ic == pytest.approx(1.0) and quality.hit_rate > 0.8
        assert quality.top_k_return is not None and quality.top_k_return > 0
    else:
        assert quality.ic == pytest.approx(-1.0) and quality.hit_rate < 0.2
    again = live_quality(url, MODEL, "1", window_days=20, top_k=4)
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("select count(*), max(ic) from monitoring.live_quality")
        count, ic = cur.fetchone()
    conn.close()
    assert count == 1 and ic == pytest.approx(again.ic)


def test_thresholds_and_the_cool_down(make_database: Callable[[], str]) -> None:
    url = make_database()
    thresholds = Thresholds(cooldown_days=5)
    day = date(2024, 6, 3)

    quiet = decide_retraining(url, MODEL, "1", day, [], thresholds)
    assert not quiet.retrain and "no threshold crossed" in quiet.message

    first = decide_retraining(url, MODEL, "1", day, ["live IC -0.1 < 0.0"], thresholds)
    assert first.retrain and "live IC" in first.message
    record_retrain_request(url, first)

    soon = decide_retraining(url, MODEL, "1", day + timedelta(days=4), ["x"], thresholds)
    assert not soon.retrain and "cool-down" in soon.message and "2024-06-08" in soon.message
    later = decide_retraining(url, MODEL, "1", day + timedelta(days=5), ["x"], thresholds)
    assert later.retrain
    other = decide_retraining(url, "another_model", "1", day, ["x"], thresholds)
    assert other.retrain  # the cool-down is per model

    # A champion that already saw the data up to the run date: retraining would learn nothing.
    seen = decide_retraining(url, "third_model", "3", day, ["x"], thresholds, seen_until=day)
    assert not seen.retrain and "would learn nothing new" in seen.message
    newer = decide_retraining(
        url, "third_model", "3", day, ["x"], thresholds, seen_until=day - timedelta(days=1)
    )
    assert newer.retrain


def test_too_few_live_days_are_not_judged() -> None:
    from ml.monitoring.live_quality import LiveQuality

    quality = LiveQuality(
        date(2024, 1, 1), MODEL, "1", "fwd_ret_1d", None, None, 3, -0.5, 0.1, 4, -0.01
    )
    assert retrain_reasons(None, quality, Thresholds(min_live_days=10)) == []
    reasons = retrain_reasons(None, quality, Thresholds(min_live_days=3))
    assert len(reasons) == 2 and reasons[0].startswith("live IC")


def test_a_long_list_of_drifted_features_is_cut_short(tmp_path: Path) -> None:
    from ml.monitoring.drift import DriftResult

    per_feature = {
        f"f{i:02d}": {"drifted": True, "score": 0.0, "method": "K-S p_value", "threshold": 0.05}
        for i in range(25)
    }
    drift = DriftResult(25, 25, 1.0, True, per_feature, tmp_path / "r.html")  # type: ignore[arg-type]
    (reason,) = retrain_reasons(drift, None, Thresholds())
    assert reason.endswith("f08, f09 and 15 more")


def register_champion(ml_settings: Settings, tags: dict[str, str], params: dict[str, str]) -> str:
    import mlflow
    from mlflow import MlflowClient

    uri = ml_settings.mlflow.tracking_uri
    client = MlflowClient(uri, uri)
    experiment = client.create_experiment(
        f"monitoring_{uuid.uuid4().hex[:8]}",
        artifact_location=(ml_settings.artifact_root / "monitoring").resolve().as_uri(),
    )
    run = client.create_run(experiment)
    for key, value in params.items():
        client.log_param(run.info.run_id, key, value)
    client.set_terminated(run.info.run_id)
    client.create_registered_model(ml_settings.mlflow.model_name)
    version = client.create_model_version(
        ml_settings.mlflow.model_name, f"runs:/{run.info.run_id}/model", run.info.run_id, tags=tags
    )
    client.set_registered_model_alias(ml_settings.mlflow.model_name, "champion", version.version)
    mlflow.set_tracking_uri(None)
    return run.info.run_id


@pytest.mark.parametrize(
    ("good", "shift", "retrain"), [(True, False, False), (False, False, True), (True, True, True)]
)
def test_monitor_end_to_end(
    make_database: Callable[[], str],
    ml_settings: Settings,
    good: bool,
    shift: bool,
    retrain: bool,
) -> None:
    url = make_database()
    build_market(url, good_signals=good, shift_features=shift)
    # Today's training code: the window as run params; features and label as tags.
    run_id = register_champion(
        ml_settings,
        tags={"features": ",".join(FEATURES), "label": "fwd_ret_1d"},
        params={"train_start": str(TRAIN[0]), "train_end": str(TRAIN[1])},
    )
    # A toy market: its 50-day reference holds five 20-day windows, too few to know a
    # feature's noise level well, so a wider margin than the default (calibrated on years of
    # hundreds of stocks, docs/api.md) keeps an unchanged market quiet.
    thresholds = Thresholds(current_days=20, min_live_days=10, top_k=4, cooldown_days=5,
                            threshold_margin=1.5)  # fmt: skip
    # The published signals are model "signal_monitoring"; monitor the registry's name.
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "update signals.daily_signals set model_name = %s", (ml_settings.mlflow.model_name,)
        )
    conn.close()

    result = monitor(url, ml_settings, thresholds=thresholds)

    assert result.drift.drift_detected is shift
    assert result.drift.report_path.name.endswith(f"_v1_{run_id[:12]}.html")
    assert result.drift.report_path.is_relative_to(Path(ml_settings.reports_dir).resolve())
    assert result.quality.n_days == 20
    assert result.decision.retrain is retrain, result.decision.message
    if not good:
        assert any(r.startswith("live IC") for r in result.decision.reasons)
    if shift:
        assert any(r.startswith("feature drift") for r in result.decision.reasons)
    # Live quality and the decision sit in the day's drift run in MLflow.
    from mlflow import MlflowClient

    uri = ml_settings.mlflow.tracking_uri
    assert result.drift.mlflow_drift_run_id is not None
    drift_run = MlflowClient(uri, uri).get_run(result.drift.mlflow_drift_run_id)
    assert drift_run.data.metrics["live_ic"] == pytest.approx(result.quality.ic)
    assert drift_run.data.metrics["live_days"] == 20
    assert drift_run.data.tags["marketflow.retrain"] == str(retrain).lower()
    xcom = result.as_xcom()
    assert xcom["decision"]["retrain"] is retrain and xcom["decision"]["run_date"] == str(DAYS[-1])
