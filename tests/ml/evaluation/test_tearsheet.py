"""ml/evaluation/tearsheet.py: quantiles, monthly IC and the HTML tear sheet with its PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.config import BacktestConfig
from ml.evaluation.backtest import backtest
from ml.evaluation.tearsheet import monthly_ic, quantile_returns, write_tear_sheet


def _signal_frame(strength: float, n_days: int = 300, n_symbols: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(4)
    days = pd.bdate_range("2015-01-01", periods=n_days).date
    signal = rng.normal(size=(n_days, n_symbols))
    rets = strength * signal + rng.normal(0, 0.02, signal.shape)
    return pd.DataFrame(
        {
            "trade_date": np.repeat(days, n_symbols),
            "symbol": np.tile([f"S{i:02d}" for i in range(n_symbols)], n_days),
            "pred": signal.ravel(),
            "label": rets.ravel(),
            "trade_ret": rets.ravel(),
        }
    )


def test_quantile_returns_rank_a_real_signal_and_not_a_shuffled_one() -> None:
    frame = _signal_frame(0.004)
    table = quantile_returns(frame)
    assert list(table.columns) == ["q1", "q2", "q3", "q4", "q5", "spread"]
    means = table.mean()
    assert means["q1"] < means["q2"] < means["q3"] < means["q4"] < means["q5"]
    np.testing.assert_allclose(table["spread"], table["q5"] - table["q1"])
    # Each group holds a fifth of the day's 40 symbols: its mean is that of 8 returns.
    day = frame[frame["trade_date"] == frame["trade_date"].iloc[0]].sort_values("pred")
    assert table["q1"].iloc[0] == pytest.approx(day["trade_ret"].iloc[:8].mean())

    shuffled = frame.assign(pred=np.random.default_rng(1).permutation(frame["pred"].to_numpy()))
    spread = quantile_returns(shuffled)["spread"]
    assert abs(spread.mean()) < 3 * spread.std() / np.sqrt(len(spread))


def test_monthly_ic_averages_the_days_of_each_month() -> None:
    frame = _signal_frame(0.004, n_days=70)
    table = monthly_ic(frame)
    assert list(table.index) == ["2015-01", "2015-02", "2015-03", "2015-04"]
    assert table["days"].sum() == 70
    january = frame[pd.to_datetime(frame["trade_date"]).dt.month == 1]
    daily = january.groupby("trade_date").apply(
        lambda d: d["pred"].rank().corr(d["label"].rank()), include_groups=False
    )
    assert table.loc["2015-01", "rank_ic"] == pytest.approx(daily.mean())
    assert (table["rank_ic"] > 0.05).all()  # 0.004 of signal in 0.02 of noise: IC ~ 0.2


def test_the_tear_sheet_is_one_html_page_with_quantstats_and_our_section(tmp_path: Path) -> None:
    frame = _signal_frame(0.002)
    strategy = BacktestConfig(top_k=8, n_drop=2, buy_cost_bps=5, sell_cost_bps=15,
                              benchmark_symbol="S00")  # fmt: skip
    result = backtest(frame, strategy)
    sheet = write_tear_sheet(frame, result, strategy, "ridge", tmp_path)

    text = sheet.html.read_text(encoding="utf-8")
    assert "<script" not in text  # a static page: safe to serve from the API
    assert "TopkDropout(8, 2), 5/15 bps buy/sell, daily" in text
    assert text.count("data:image/png;base64,") == 3
    assert "Excess return (second benchmark)" in text
    assert "Cumulative Return" in text  # quantstats' own metrics table
    assert f"{result.stats['excess_annual_return']:.2%}" in text
    for name, path in sheet.figures.items():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert len(sheet.monthly_ic) == 14  # 2015-01 .. 2016-02
