"""Drift monitoring with the calibrated defaults (issue 16) on real stocks: twenty symbols of
the dev universe (../shared/data/dev-universe), 2011-2013, through the real csv ingest and dbt
build. A quiet month asks for no retrain; the same stocks with a planted regime shift (the
last month's daily moves four times as large) do. bench/drift_calibration.py has the whole
dev-universe table these defaults come from."""

from __future__ import annotations

import gzip
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.dbt import build
from core.settings import MonitoringSettings
from ingest.loader import ingest
from ml.data.handler import discover_features
from ml.monitoring.monitor import reference_window, run_drift
from ml.monitoring.retrain import Thresholds, retrain_reasons

DEV_UNIVERSE = Path(__file__).resolve().parents[4] / "shared" / "data" / "dev-universe"
SYMBOLS = ["AA", "AAPL", "ABT", "ADBE", "ADP", "AEP", "AFL", "AMGN", "AMZN", "APD", "AXP",
           "BA", "BAC", "BAX", "BDX", "BK", "BMY", "C", "CAT", "CL"]  # fmt: skip
START, END = date(2011, 1, 1), date(2013, 12, 31)
SHIFT_FROM = date(2013, 12, 2)

pytestmark = pytest.mark.skipif(not DEV_UNIVERSE.is_dir(), reason="no ../shared/data/dev-universe")


def _copy(folder: Path, plant_shift: bool) -> Path:
    folder.mkdir()
    for symbol in SYMBOLS:
        with gzip.open(DEV_UNIVERSE / f"{symbol}.csv.gz", "rt") as fh:
            frame = pd.read_csv(fh, parse_dates=["Date"])
        frame = frame[(frame["Date"] >= pd.Timestamp(START)) & (frame["Date"] <= pd.Timestamp(END))]
        frame = frame.reset_index(drop=True)
        if plant_shift:
            # From SHIFT_FROM on, a crash: every day's move (close to close, and the bar
            # around it) four times as large and a percent lower, as in October 2008.
            late = frame["Date"] >= pd.Timestamp(SHIFT_FROM)
            first = int(np.argmax(late.to_numpy()))
            base = frame.loc[first - 1, "Close"]
            log_moves = np.log(frame["Close"]).diff().where(late, 0.0).fillna(0.0)
            new_close = base * np.exp((4 * log_moves - 0.01).cumsum().where(late))
            scale = (new_close / frame["Close"]).where(late, 1.0)
            for column in ("Open", "High", "Low", "Close"):
                frame[column] = frame[column] * scale
        frame.assign(Date=frame["Date"].dt.date).to_csv(folder / f"{symbol}.csv", index=False)
    return folder


def _drift(url: str, reports: Path, current_end: date, train_end: date):
    monitoring = MonitoringSettings()
    return run_drift(
        url,
        reference_window=reference_window((START, train_end), monitoring.reference_days),
        current_days=monitoring.current_days,
        features=discover_features(url),
        reports_dir=reports,
        model_name=None,
        model_version=None,
        mlflow_run_id=None,
        run_date=current_end,
        drift_share_threshold=monitoring.drift_share,
        reference_rows=monitoring.reference_rows,
        feature_threshold=monitoring.feature_threshold,
        psi_threshold=monitoring.psi_threshold,
    )


def _reasons(result) -> list[str]:
    return retrain_reasons(result, None, Thresholds())


@pytest.fixture(scope="module")
def stocks(tmp_path_factory, admin_url):
    from core.db import drop_database, init_database
    from tests.conftest import _test_url

    made = []

    def make(plant_shift: bool) -> str:
        name = f"drift_{'shift' if plant_shift else 'quiet'}_{len(made)}"
        url = _test_url(f"{name}_{tmp_path_factory.getbasetemp().name[-6:]}")
        init_database(url, admin_url)
        made.append(url)
        folder = _copy(tmp_path_factory.mktemp(name) / "csv", plant_shift)
        batch = ingest(url, "csv", None, START, END, provider_options={"path": str(folder)})
        assert batch.rows_inserted > 10_000 and batch.rows_rejected == 0, batch.summary()
        build(url)
        return url

    yield make
    from core.urls import database_name

    for url in made:
        drop_database(admin_url, database_name(url))


def test_a_quiet_month_asks_for_no_retrain(stocks, tmp_path: Path) -> None:
    url = stocks(plant_shift=False)
    result = _drift(url, tmp_path, current_end=SHIFT_FROM.replace(day=31),
                    train_end=date(2013, 10, 31))  # fmt: skip
    assert not result.drift_detected, result.summary()
    assert result.share_drifted < 0.5 * result.drift_share_threshold, result.summary()
    assert _reasons(result) == []


def test_a_planted_regime_shift_asks_for_a_retrain(stocks, tmp_path: Path) -> None:
    url = stocks(plant_shift=True)
    result = _drift(url, tmp_path, current_end=SHIFT_FROM.replace(day=31),
                    train_end=date(2013, 10, 31))  # fmt: skip
    assert result.drift_detected, result.summary()
    # The moves' scale drifted: every volatility family is among the drifted features.
    assert {"std_5d", "std_20d", "vol_20d"} <= set(result.drifted_features), result.drifted_features
    assert any(r.startswith("feature drift") for r in _reasons(result)), _reasons(result)
