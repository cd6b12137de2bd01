"""ml/data/labels.py: the label recast per day across symbols, and models fitted on it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.config import ModelSpec
from ml.data.dataset import Panel
from ml.data.labels import process_label
from ml.evaluation.walk_forward import WalkForwardConfig, make_folds, run_walk_forward


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(4)
    days = pd.bdate_range("2023-01-02", periods=6).date
    frame = pd.DataFrame(
        [(s, d, rng.normal(0.01 * i, 0.02)) for s in "ABCDE" for i, d in enumerate(days)],
        columns=["symbol", "trade_date", "y"],
    )
    frame["in_universe"] = True
    frame.loc[(frame["symbol"] == "E") & (frame["trade_date"] == days[1]), "in_universe"] = False
    frame.loc[(frame["symbol"] == "D") & (frame["trade_date"] == days[2]), "y"] = np.nan
    # On the last day only A is labelled: no cross-section.
    frame.loc[(frame["trade_date"] == days[5]) & (frame["symbol"] != "A"), "y"] = np.nan
    return frame


def test_cs_zscore_centres_and_scales_each_day_over_its_labelled_universe_rows() -> None:
    frame = _frame()
    z = process_label(frame, "y", "cs_zscore")

    used = frame["in_universe"] & frame["y"].notna()
    stats = z[used].groupby(frame.loc[used, "trade_date"]).agg(["mean", "std", "count"])
    full_days = stats[stats["count"] > 1]
    np.testing.assert_allclose(full_days["mean"], 0, atol=1e-12)
    np.testing.assert_allclose(
        full_days["std"] * np.sqrt((full_days["count"] - 1) / full_days["count"]), 1
    )
    assert z[~used].isna().all()  # out of the universe or unlabelled: no target
    assert z[used & (frame["trade_date"] == frame["trade_date"].max())].tolist() == [0.0]
    # The day's statistics ignore the row outside the universe: E's day-1 value moves nothing.
    moved = frame.copy()
    moved.loc[~moved["in_universe"], "y"] = 1e6
    pd.testing.assert_series_equal(process_label(moved, "y", "cs_zscore"), z)


def test_cs_rank_is_the_centred_percentile_rank_with_unit_variance() -> None:
    frame = _frame()
    r = process_label(frame, "y", "cs_rank")
    day = frame["trade_date"] == frame["trade_date"].min()
    ranks = frame.loc[day, "y"].rank().to_numpy()
    np.testing.assert_allclose(r[day], ((ranks - 0.5) / 5 - 0.5) * np.sqrt(12))
    assert r.abs().max() <= np.sqrt(3)
    with pytest.raises(ValueError, match="unknown label processor"):
        process_label(frame, "y", "demean")


def _market_panel() -> Panel:
    """Each day's return: a market move common to every symbol (predicted by f_market, the
    same for all symbols that day), 20x the spread a symbol's own feature f_own predicts."""
    rng = np.random.default_rng(7)
    days = pd.bdate_range("2021-01-04", periods=360).date
    symbols = [f"S{i:02d}" for i in range(25)]
    market = rng.normal(size=len(days))
    rows = []
    for s in symbols:
        own = rng.normal(size=len(days))
        y = 0.02 * market + 0.001 * own + rng.normal(0, 0.003, len(days))
        rows.append(pd.DataFrame({"symbol": s, "trade_date": days, "f_market": market,
                                  "f_own": own, "fwd_ret_5d": y}))  # fmt: skip
    frame = pd.concat(rows, ignore_index=True)
    frame["in_universe"] = True
    frame["trade_ret_1d"] = frame["fwd_ret_5d"] / 5  # what the backtest earns (not asserted)
    return Panel(frame, ["f_market", "f_own"], "fwd_ret_5d", 5)


def test_a_tree_fitted_on_the_cross_section_ranks_symbols_better_than_on_raw_returns() -> None:
    panel = _market_panel()
    folds = make_folds(panel.calendar, 5, WalkForwardConfig(train_days=200, valid_days=40,
                                                            test_days=100))  # fmt: skip
    # A small budget of splits, as any tree model has relative to a real panel's noise.
    kwargs = {"n_estimators": 8, "max_depth": 1, "learning_rate": 0.3}
    raw = run_walk_forward("xgb", {"class": "xgboost", "kwargs": kwargs}, panel, folds)
    spec = ModelSpec.model_validate({"class": "xgboost", "kwargs": kwargs,
                                     "label_processor": "cs_zscore"})  # fmt: skip
    zscored = run_walk_forward("xgb_cs", spec, panel, folds)

    # Raw: every split goes to the market move, which ties every symbol of a day (no rank
    # IC at all); z-scored: the splits go to f_own.
    assert np.nan_to_num(raw.metrics["rank_ic"]) < 0.05
    assert np.unique(raw.scored.groupby("trade_date")["pred"].nunique()).tolist() == [1]
    assert zscored.metrics["rank_ic"] > 0.2
    # Metrics are on the raw label in both: the scored frames carry the same labels.
    np.testing.assert_array_equal(raw.scored["label"], zscored.scored["label"])
    assert spec.as_dict()["label_processor"] == "cs_zscore"
