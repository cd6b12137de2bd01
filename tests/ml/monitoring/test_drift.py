"""ml/drift.py with real Evidently, a real PostgreSQL database and a real (sqlite) MLflow store."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg2
import pytest
from psycopg2.extras import execute_values

from ml.monitoring.drift import compute_drift
from ml.monitoring.monitor import run_drift

FEATURES = ["ret_1d", "ret_5d", "ret_20d", "vol_20d", "rsi_14", "volume_z_20d"]
SHIFTED = ["ret_1d", "ret_5d", "vol_20d", "rsi_14"]
SYMBOLS = ["AAA", "BBB"]
N_DAYS = 120
WARM_UP_DAYS = 20
CURRENT_DAYS = 20
TRADING_DAYS = list(pd.bdate_range("2024-01-01", periods=N_DAYS).date)
REFERENCE_WINDOW = (TRADING_DAYS[0], TRADING_DAYS[79])


def _frame(rng: np.random.Generator, rows: int, shift: dict[str, float] | None = None):
    frame = pd.DataFrame(rng.normal(size=(rows, len(FEATURES))), columns=FEATURES)
    for name, delta in (shift or {}).items():
        frame[name] += delta
    return frame


# --- compute_drift -------------------------------------------------------------------------


def test_same_distribution_is_no_drift_and_writes_the_html(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    report = tmp_path / "nested" / "dir" / "drift.html"

    # A fixed threshold (no per-feature ones from the reference's months): 200 rows of the
    # same normal lie about 0.1 from 500 by chance, so 0.25.
    result = compute_drift(_frame(rng, 500), _frame(rng, 200), FEATURES, report,
                           feature_threshold=0.25)  # fmt: skip

    assert not result.drift_detected
    assert result.n_features == len(FEATURES)
    assert result.share_drifted < 0.5
    assert result.n_drifted_features == len(result.drifted_features)
    assert result.share_drifted == pytest.approx(result.n_drifted_features / len(FEATURES))
    assert set(result.per_feature) == set(FEATURES)
    for drift in result.per_feature.values():
        # Continuous features: the normed Wasserstein distance, drifted when HIGH.
        assert drift["method"] == "wasserstein"
        assert drift["score"] >= 0.0 and drift["threshold"] == 0.25
        assert drift["drifted"] == (drift["score"] >= drift["threshold"])
    assert result.report_path == report
    html = report.read_text(encoding="utf-8")
    assert "<html" in html
    n = result.n_drifted_features
    assert f"({n} out of {len(FEATURES)})" in html


def test_shifted_means_on_most_features_are_drift(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    reference = _frame(rng, 500)
    current = _frame(rng, 200, shift={name: 1.0 for name in SHIFTED})

    result = compute_drift(reference, current, FEATURES, tmp_path / "drift.html",
                           feature_threshold=0.25)  # fmt: skip

    assert result.drift_detected
    assert set(SHIFTED) <= set(result.drifted_features)
    assert result.n_drifted_features >= len(SHIFTED)
    assert result.share_drifted == pytest.approx(result.n_drifted_features / len(FEATURES))
    for name in SHIFTED:
        assert result.per_feature[name]["score"] >= result.per_feature[name]["threshold"]
    assert "drift: " in result.summary() and "-> DRIFT" in result.summary()

    strict = compute_drift(reference, current, FEATURES, tmp_path / "strict.html", 0.9,
                           feature_threshold=0.25)  # fmt: skip
    assert strict.drifted_features == result.drifted_features
    assert not strict.drift_detected


def test_the_test_follows_the_features_type_not_the_sample_size(tmp_path: Path) -> None:
    """Evidently's default would score 500 reference rows with a K-S p-value (which flags
    almost everything on a large sample) and switch to a distance above 1000: here a
    continuous feature is always scored by the normed Wasserstein distance and a discrete one
    (a handful of values) by PSI, with the configured thresholds."""
    rng = np.random.default_rng(3)
    for rows in (500, 1500):
        reference = _frame(rng, rows).assign(bucket=rng.integers(0, 5, rows))
        current = _frame(rng, 300, shift={"ret_1d": 1.0}).assign(
            bucket=rng.choice(5, 300, p=[0.6, 0.1, 0.1, 0.1, 0.1])
        )
        features = [*FEATURES, "bucket"]
        result = compute_drift(reference, current, features, tmp_path / "drift.html",
                               feature_threshold=0.2, psi_threshold=0.15)  # fmt: skip
        assert result.per_feature["ret_1d"]["method"] == "wasserstein"
        assert result.per_feature["ret_1d"]["threshold"] == 0.2
        assert result.per_feature["bucket"]["method"] == "psi", result.per_feature
        assert result.per_feature["bucket"]["threshold"] == 0.15
        assert sorted(result.drifted_features) == ["bucket", "ret_1d"], result.per_feature
        assert not result.drift_detected


def test_compute_drift_rejects_empty_frames_and_missing_columns(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="current frame has no rows"):
        compute_drift(_frame(rng, 50), _frame(rng, 0), FEATURES, tmp_path / "a.html")
    with pytest.raises(ValueError, match="lacks feature columns"):
        compute_drift(_frame(rng, 50), _frame(rng, 50), [*FEATURES, "nope"], tmp_path / "b.html")


# --- run_drift -----------------------------------------------------------------------------


def _create_features_daily(database_url: str, shift_current: bool = True) -> None:
    """marts.features_daily as dbt builds it: NULL window features during the warm-up days."""
    rng = np.random.default_rng(42)
    rows = []
    for symbol in SYMBOLS:
        for i, day in enumerate(TRADING_DAYS):
            values = rng.normal(size=len(FEATURES))
            if shift_current and i >= N_DAYS - CURRENT_DAYS:
                values[[FEATURES.index(name) for name in SHIFTED]] += 1.5
            features = [None if i < WARM_UP_DAYS else float(v) for v in values]
            rows.append((symbol, day, 100.0 + i, i + 1, *features))
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute(
            """
            create schema if not exists marts;
            create table marts.features_daily (
                symbol text not null,
                trade_date date not null,
                adj_close double precision not null,
                history_days integer not null,
                ret_1d double precision,
                ret_5d double precision,
                ret_20d double precision,
                vol_20d double precision,
                rsi_14 double precision,
                volume_z_20d double precision,
                primary key (symbol, trade_date)
            )
            """
        )
        execute_values(cur, "insert into marts.features_daily values %s", rows)
    conn.close()


def _drift_rows(database_url: str) -> list[dict]:
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute("select * from monitoring.drift_runs order by created_at, run_id")
        names = [column.name for column in cur.description]
        rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    conn.close()
    return rows


@pytest.fixture
def features_db(make_database: Callable[[], str]) -> str:
    url = make_database()
    _create_features_daily(url)
    return url


def _run(database_url: str, reports_dir: Path, **overrides):
    kwargs = dict(
        database_url=database_url,
        reference_window=REFERENCE_WINDOW,
        current_days=CURRENT_DAYS,
        features=FEATURES,
        reports_dir=reports_dir,
        model_name="marketflow_signal",
        model_version="3",
        mlflow_run_id=None,
    )
    kwargs.update(overrides)
    return run_drift(**kwargs)


def test_run_drift_records_one_row_per_date_and_model(features_db: str, tmp_path: Path) -> None:
    result = _run(features_db, tmp_path / "reports")

    current_start, current_end = TRADING_DAYS[-CURRENT_DAYS], TRADING_DAYS[-1]
    report = tmp_path / "reports" / f"drift_{current_end}_v3.html"
    assert result.report_path == report.resolve()
    assert result.report_path.is_file()
    assert result.drift_detected
    assert set(SHIFTED) <= set(result.drifted_features)

    (row,) = _drift_rows(features_db)
    # str(): yfinance imports peewee, which registers psycopg2's UUID caster process-wide.
    assert str(row["run_id"]) == str(result.run_id)
    assert row["run_date"] == current_end
    assert (row["reference_start"], row["reference_end"]) == REFERENCE_WINDOW
    assert (row["current_start"], row["current_end"]) == (current_start, current_end)
    assert row["n_features"] == result.n_features == len(FEATURES)
    assert row["n_drifted_features"] == result.n_drifted_features
    assert row["share_drifted"] == pytest.approx(result.share_drifted)
    assert row["drift_detected"] is result.drift_detected
    assert row["report_path"] == str(result.report_path)
    assert (row["model_name"], row["model_version"], row["mlflow_run_id"]) == (
        "marketflow_signal",
        "3",
        None,
    )

    again = _run(features_db, tmp_path / "reports")
    (row,) = _drift_rows(features_db)
    assert again.run_id != result.run_id
    assert str(row["run_id"]) == str(again.run_id)
    assert row["n_drifted_features"] == result.n_drifted_features

    _run(features_db, tmp_path / "reports", model_version="4")
    assert len(_drift_rows(features_db)) == 2
    _run(features_db, tmp_path / "reports", model_name=None, model_version=None)
    _run(features_db, tmp_path / "reports", model_name=None, model_version=None)
    rows = _drift_rows(features_db)
    assert len(rows) == 3
    assert sorted((r["model_version"] or "") for r in rows) == ["", "3", "4"]


def test_run_date_bounds_the_current_window(features_db: str, tmp_path: Path) -> None:
    run_date = TRADING_DAYS[-CURRENT_DAYS - 1]  # the last day before the shift

    result = _run(features_db, tmp_path, run_date=run_date)

    (row,) = _drift_rows(features_db)
    assert row["run_date"] == run_date
    assert row["current_end"] == run_date
    assert row["current_start"] == TRADING_DAYS[-2 * CURRENT_DAYS]
    assert result.report_path.name == f"drift_{run_date}_v3.html"
    assert not result.drift_detected


def test_run_drift_refuses_empty_windows(make_database: Callable[[], str], tmp_path: Path) -> None:
    url = make_database()
    _create_features_daily(url)
    with pytest.raises(ValueError, match="reference window"):
        _run(url, tmp_path, reference_window=(date(1990, 1, 1), date(1990, 12, 31)))
    # The warm-up days hold no complete feature rows.
    with pytest.raises(ValueError, match="current window"):
        _run(url, tmp_path, run_date=TRADING_DAYS[WARM_UP_DAYS - 1], current_days=5)
    with pytest.raises(ValueError, match="no trading days"):
        _run(url, tmp_path, run_date=date(2000, 1, 3))
    assert _drift_rows(url) == []


# --- MLflow --------------------------------------------------------------------------------


@pytest.fixture
def mlflow_store(tmp_path: Path) -> Iterator[tuple[object, str]]:
    """A sqlite MLflow store with one experiment and a finished training run."""
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    client = MlflowClient()
    experiment_id = client.create_experiment(
        "drift_test", artifact_location=(tmp_path / "artifacts").as_uri()
    )
    training = client.create_run(experiment_id, run_name="train")
    client.set_terminated(training.info.run_id)
    yield client, training.info.run_id
    mlflow.set_tracking_uri(None)


def test_drift_is_logged_to_its_own_mlflow_run(
    features_db: str, tmp_path: Path, mlflow_store: tuple
) -> None:
    client, training_run_id = mlflow_store

    result = _run(features_db, tmp_path / "reports", mlflow_run_id=training_run_id)

    assert result.mlflow_drift_run_id is not None
    assert result.mlflow_drift_run_id != training_run_id
    drift_run = client.get_run(result.mlflow_drift_run_id)
    training_run = client.get_run(training_run_id)
    run_date = TRADING_DAYS[-1]
    assert drift_run.info.experiment_id == training_run.info.experiment_id
    assert drift_run.info.run_name == f"drift_{run_date}"
    assert drift_run.info.status == "FINISHED"
    assert drift_run.data.tags["marketflow.model_run_id"] == training_run_id
    assert drift_run.data.tags["marketflow.drift_runs_id"] == str(result.run_id)
    assert drift_run.data.metrics["share_drifted"] == pytest.approx(result.share_drifted)
    assert drift_run.data.params["current_end"] == str(run_date)
    artifacts = [a.path for a in client.list_artifacts(result.mlflow_drift_run_id, "drift")]
    assert artifacts == [f"drift/{result.report_path.name}"]
    local = Path(client.download_artifacts(result.mlflow_drift_run_id, artifacts[0], tmp_path))
    assert local.read_bytes() == result.report_path.read_bytes()
    # The training run is left alone.
    assert training_run.data.metrics == {}
    assert client.list_artifacts(training_run_id) == []
    (row,) = _drift_rows(features_db)
    assert row["mlflow_run_id"] == training_run_id

    again = _run(features_db, tmp_path / "reports", mlflow_run_id=training_run_id)

    live = client.search_runs(
        [training_run.info.experiment_id], filter_string=f"attributes.run_name = 'drift_{run_date}'"
    )
    assert [r.info.run_id for r in live] == [again.mlflow_drift_run_id]
    assert client.get_run(result.mlflow_drift_run_id).info.lifecycle_stage == "deleted"


def test_unreachable_mlflow_still_records_the_drift(features_db: str, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    result = _run(
        features_db,
        tmp_path,
        mlflow_run_id="0" * 32,
        tracking_uri=f"http://127.0.0.1:{port}",
    )

    assert result.mlflow_drift_run_id is None
    (row,) = _drift_rows(features_db)
    # str(): yfinance imports peewee, which registers psycopg2's UUID caster process-wide.
    assert str(row["run_id"]) == str(result.run_id)


# --- per-feature rows, report names, prediction drift ---------------------------------------


def _publish_scores(database_url: str, shift_from: int | None) -> None:
    """signals.daily_signals of model v3 on every trading day; scores jump from `shift_from` on."""
    rng = np.random.default_rng(1)  # a fixed draw; K-S at 5% flags some seeds by chance
    rows = []
    for i, day in enumerate(TRADING_DAYS):
        for j in range(10):
            score = float(rng.normal()) + (3.0 if shift_from is not None and i >= shift_from else 0)
            rows.append((day, f"S{j}", score, j + 1, "neutral", "marketflow_signal", "3", "run"))
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        execute_values(cur, "insert into signals.daily_signals values %s", rows)
    conn.close()


def _feature_rows(database_url: str, run_id: object) -> dict[str, tuple]:
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute(
            "select feature, drifted, score, method, threshold from monitoring.drift_features"
            " where run_id = %s",
            (str(run_id),),
        )
        rows = {row[0]: row[1:] for row in cur.fetchall()}
    conn.close()
    return rows


def test_one_row_per_feature_and_report_names_per_model(features_db: str, tmp_path: Path) -> None:
    first = _run(features_db, tmp_path, mlflow_run_id=None, model_version="3")
    rows = _feature_rows(features_db, first.run_id)
    assert set(rows) == set(FEATURES)
    for name, (drifted, score, method, threshold) in rows.items():
        assert drifted == first.per_feature[name]["drifted"]
        assert score == pytest.approx(first.per_feature[name]["score"])
        assert (method, threshold) == (
            first.per_feature[name]["method"],
            first.per_feature[name]["threshold"],
        )
    # Another model version on the same day keeps its own report.
    second = _run(features_db, tmp_path, model_version="4")
    assert second.report_path != first.report_path
    assert first.report_path.is_file() and second.report_path.is_file()
    # Re-running replaces the run and, through the foreign key, its feature rows.
    again = _run(features_db, tmp_path, model_version="3")
    assert _feature_rows(features_db, first.run_id) == {}
    assert set(_feature_rows(features_db, again.run_id)) == set(FEATURES)
    assert first.prediction is None  # no published scores: nothing to compare


@pytest.mark.parametrize(("shift_from", "drifted"), [(None, False), (N_DAYS - CURRENT_DAYS, True)])
def test_prediction_drift_of_the_published_scores(
    features_db: str, tmp_path: Path, shift_from: int | None, drifted: bool
) -> None:
    _publish_scores(features_db, shift_from)
    result = _run(features_db, tmp_path)
    assert result.prediction is not None
    assert result.prediction["drifted"] is drifted, result.prediction
    (row,) = _drift_rows(features_db)
    assert row["prediction_drifted"] is drifted
    assert row["prediction_drift_score"] == pytest.approx(result.prediction["score"])
    assert result.report_path.with_name(result.report_path.stem + "_predictions.html").is_file()


def test_a_sampled_reference_is_fixed_smaller_and_still_flags_the_shift(
    features_db: str, tmp_path: Path
) -> None:
    """A real universe's training window is years of rows: the reference is a fixed sample
    of about `reference_rows` of them (the same rows every run), and the verdict holds."""
    from ml.monitoring import store

    def reference(rows: int):
        _, frame, _ = store.read_windows(
            features_db, FEATURES, REFERENCE_WINDOW, CURRENT_DAYS, None, rows
        )
        return frame

    whole = reference(0)
    sample = reference(len(whole) // 4)
    assert len(whole) // 8 < len(sample) < len(whole) // 2
    assert set(map(tuple, sample[["symbol", "trade_date"]].to_numpy())) <= set(
        map(tuple, whole[["symbol", "trade_date"]].to_numpy())
    )
    pd.testing.assert_frame_equal(sample, reference(len(whole) // 4))  # fixed, not random

    result = _run(features_db, tmp_path, reference_rows=len(whole) // 4)
    assert result.drift_detected
    # About 30 sampled rows: each feature's noise level comes from windows of ten rows, so a
    # 1.5-sigma shift can hide in one of them; nothing unshifted is flagged.
    assert set(result.drifted_features) <= set(SHIFTED)
    assert len(result.drifted_features) >= len(SHIFTED) - 1


def test_the_report_shows_every_feature_first_and_the_detail_of_the_furthest(
    tmp_path: Path,
) -> None:
    """138 features made a 13 MB report: the page now opens on a summary of every feature,
    and Evidently's detail covers the 20 furthest past their thresholds."""
    rng = np.random.default_rng(5)
    names = [f"f{i:02d}" for i in range(30)]
    reference = pd.DataFrame(rng.normal(size=(600, 30)), columns=names)
    current = pd.DataFrame(rng.normal(size=(200, 30)), columns=names)
    current[["f03", "f17"]] += 2.0
    result = compute_drift(reference, current, names, tmp_path / "drift.html",
                           feature_threshold=0.3)  # fmt: skip
    assert sorted(result.drifted_features) == ["f03", "f17"]
    page = result.report_path.read_text(encoding="utf-8")
    summary = page[page.index('<section id="marketflow-drift-summary"') : page.index("</section>")]
    assert "no drift: 2 of 30 features drifted (7%" in summary
    assert all(f"<td>{name}</td>" in summary for name in names)
    # The drifted ones lead the table, and the detail below is Evidently's for 20 of them.
    assert summary.index("<td>f03</td>") < summary.index("<td>f00</td>")
    assert summary.count("<td>below</td>") == 20
    assert "out of 20)" in page and "out of 30)" not in page
