"""ml/backtest.py: top-k books, costs on turnover, the benchmark, risk statistics, stress."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from ml.evaluation.backtest import (
    backtest,
    bootstrap_sharpe_ci,
    performance,
    portfolio_returns,
    stress_tests,
)

D = [date(2024, 1, d) for d in (2, 3, 4)]


def scored(preds: list[list[float]], rets: list[list[float]]) -> pd.DataFrame:
    rows = []
    for day, p_day, r_day in zip(D, preds, rets, strict=False):
        for symbol, p, r in zip("ABCD", p_day, r_day, strict=True):
            rows.append({"trade_date": day, "symbol": symbol, "pred": p, "ret_1d_fwd": r})
    return pd.DataFrame(rows)


def test_top_k_books_earn_their_names_returns_net_of_turnover_costs() -> None:
    frame = scored(
        [[4, 3, 2, 1], [4, 3, 2, 1], [1, 2, 3, 4]],
        [[0.01, 0.02, 0.0, -0.01], [0.03, 0.01, 0.0, 0.0], [0.0, 0.0, 0.02, 0.04]],
    )

    out = portfolio_returns(frame, top_k=2, cost_bps=10)

    cost = 10 / 1e4
    # Day 1: buy A, B (turnover 1.0); day 2: hold (0); day 3: swap to C, D (turnover 2.0).
    assert out["turnover"].tolist() == [1.0, 0.0, 2.0]
    assert out["long"].tolist() == pytest.approx([0.015 - cost, 0.02, 0.03 - 2 * cost])
    # Long/short: +A +B -C -D, gross 2; on day 3 it flips completely (turnover 4).
    assert out["turnover_ls"].tolist() == [2.0, 0.0, 4.0]
    assert out["long_short"].iloc[0] == pytest.approx(0.015 - (-0.005) - 2 * cost)
    assert out["benchmark"].tolist() == pytest.approx([0.005, 0.01, 0.015])


def test_performance_statistics_of_a_known_series() -> None:
    r = pd.Series([0.01, -0.02, 0.01, 0.01] * 63)

    stats = performance(r, seed=1)

    equity = np.cumprod(1 + r.to_numpy())
    assert stats["annual_return"] == pytest.approx(equity[-1] ** (252 / len(r)) - 1)
    assert stats["volatility"] == pytest.approx(r.std() * np.sqrt(252))
    assert stats["sharpe"] == pytest.approx(r.mean() / r.std() * np.sqrt(252))
    peak = np.maximum.accumulate(equity)
    assert stats["max_drawdown"] == pytest.approx((equity / peak - 1).min())
    assert stats["calmar"] == pytest.approx(stats["annual_return"] / abs(stats["max_drawdown"]))
    downside = np.sqrt(np.mean(np.minimum(r, 0) ** 2)) * np.sqrt(252)
    assert stats["sortino"] == pytest.approx(r.mean() * 252 / downside)
    assert stats["sharpe_ci_low"] <= stats["sharpe"] <= stats["sharpe_ci_high"]


def test_bootstrap_ci_is_seeded_and_narrows_with_more_data() -> None:
    rng = np.random.default_rng(0)
    short, long = rng.normal(0.0005, 0.01, 250), rng.normal(0.0005, 0.01, 2500)
    assert bootstrap_sharpe_ci(short, seed=3) == bootstrap_sharpe_ci(short, seed=3)
    width = [np.subtract(*bootstrap_sharpe_ci(r, seed=3))[()] for r in (short, long)]
    assert abs(width[1]) < abs(width[0])


def test_costs_and_stress_windows() -> None:
    rng = np.random.default_rng(5)
    days = pd.bdate_range("2008-06-02", "2009-12-31").date
    frame = pd.DataFrame(
        [(d, s, rng.normal(), rng.normal(0, 0.02)) for d in days for s in "ABCDE"],
        columns=["trade_date", "symbol", "pred", "ret_1d_fwd"],
    )
    cheap, dear = backtest(frame, cost_bps=0).stats, backtest(frame, cost_bps=50).stats
    assert dear["annual_return"] < cheap["annual_return"]
    assert dear["benchmark_sharpe"] == cheap["benchmark_sharpe"]  # the benchmark pays no costs

    stress = stress_tests(frame, cost_bps=10)
    assert set(stress) == {f"gfc_2008_09_cost_x{m}" for m in (1, 2, 5)}  # no 2020 data here
    returns = [stress[f"gfc_2008_09_cost_x{m}"]["annual_return"] for m in (1, 2, 5)]
    assert returns[0] > returns[1] > returns[2]
