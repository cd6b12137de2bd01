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
    topk_dropout,
)

D = [date(2024, 1, d) for d in (2, 3, 4)]


def scored(preds: list[list[float]], rets: list[list[float]]) -> pd.DataFrame:
    rows = []
    for day, p_day, r_day in zip(D, preds, rets, strict=False):
        for symbol, p, r in zip("ABCD", p_day, r_day, strict=True):
            rows.append({"trade_date": day, "symbol": symbol, "pred": p, "trade_ret": r})
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
    assert out["book"].tolist() == pytest.approx([0.015 - cost, 0.02, 0.03 - 2 * cost])
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
        columns=["trade_date", "symbol", "pred", "trade_ret"],
    )
    cheap, dear = backtest(frame, cost_bps=0).stats, backtest(frame, cost_bps=50).stats
    assert dear["annual_return"] < cheap["annual_return"]
    assert dear["benchmark_sharpe"] == cheap["benchmark_sharpe"]  # the benchmark pays no costs

    stress = stress_tests(frame, cost_bps=10)
    assert set(stress) == {f"gfc_2008_09_cost_x{m}" for m in (1, 2, 5)}  # no 2020 data here
    returns = [stress[f"gfc_2008_09_cost_x{m}"]["annual_return"] for m in (1, 2, 5)]
    assert returns[0] > returns[1] > returns[2]


def _planted_panel(n_symbols: int = 30, n_days: int = 400, seed: int = 11) -> pd.DataFrame:
    """Daily closes of independent random walks, with fwd_ret_1d (close[t] -> close[t+1])
    and trade_ret_1d (close[t+1] -> close[t+2]) computed from them as labels_daily does."""
    rng = np.random.default_rng(seed)
    days = pd.bdate_range("2020-01-01", periods=n_days).date
    frames = []
    for i in range(n_symbols):
        close = 50 * np.cumprod(1 + rng.normal(0, 0.02, n_days))
        frame = pd.DataFrame({"symbol": f"S{i:02d}", "trade_date": days, "close": close})
        frame["fwd_ret_1d"] = frame["close"].shift(-1) / frame["close"] - 1
        frame["trade_ret_1d"] = frame["close"].shift(-2) / frame["close"].shift(-1) - 1
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _scored(frame: pd.DataFrame, pred: np.ndarray) -> pd.DataFrame:
    from ml.data.dataset import Dataset, Panel
    from ml.evaluation.walk_forward import scored_frame

    panel = Panel(frame.assign(f=0.0), ["f"], "fwd_ret_1d", 1)
    rows = np.flatnonzero(np.isfinite(panel.frame["trade_ret_1d"].to_numpy()))
    dataset = Dataset(panel, {"test": rows}, panel.raw, [])
    return scored_frame(dataset, pred[rows])


def test_a_signal_that_pays_only_at_the_close_it_was_computed_on_earns_nothing() -> None:
    # The planted score is tomorrow's close-to-close return itself: a book that could trade at
    # the close its features were computed on would earn it; the next close cannot.
    frame = _planted_panel()
    scored = _scored(frame, frame["fwd_ret_1d"].to_numpy())
    assert np.allclose(scored["trade_ret"], frame["trade_ret_1d"].dropna().to_numpy())

    traded = portfolio_returns(scored, top_k=5, cost_bps=0)
    excess = (traded["book"] - traded["benchmark"]).to_numpy()
    stderr = excess.std(ddof=1) / np.sqrt(len(excess))
    assert abs(excess.mean()) < 3 * stderr

    # The same scores on the untradeable move: the planted signal is strong, so the check
    # above is not one that could not fail.
    same_close = portfolio_returns(scored.assign(trade_ret=scored["label"]), top_k=5, cost_bps=0)
    assert (same_close["book"] - same_close["benchmark"]).mean() > 20 * stderr


def test_without_trade_ret_1d_the_book_earns_each_symbols_next_day_move() -> None:
    frame = _planted_panel(n_symbols=3, n_days=30)
    from ml.evaluation.walk_forward import traded_returns

    fallback = traded_returns(frame.drop(columns="trade_ret_1d"))
    np.testing.assert_allclose(fallback, frame["trade_ret_1d"], equal_nan=True)


def test_topk_dropout_turnover_never_exceeds_2n_over_k_and_zero_cost_is_the_gross_curve() -> None:
    rng = np.random.default_rng(21)
    days = pd.bdate_range("2022-01-03", periods=250).date
    symbols = [f"S{i:02d}" for i in range(40)]
    frame = pd.DataFrame(
        [(d, s, rng.normal(), rng.normal(0, 0.02)) for d in days for s in symbols],
        columns=["trade_date", "symbol", "pred", "trade_ret"],
    )
    k, n = 10, 2
    net = portfolio_returns(frame, top_k=k, cost_bps=25, n_drop=n)
    gross = portfolio_returns(frame, top_k=k, cost_bps=0, n_drop=n)
    # Day one fills the book (turnover 1); after that at most n out and n in.
    assert net["turnover"].iloc[0] == pytest.approx(1.0)
    assert net["turnover"].iloc[1:].max() <= 2 * n / k + 1e-12
    assert net["turnover"].iloc[1:].max() == pytest.approx(2 * n / k)  # random scores churn
    np.testing.assert_allclose(
        gross["book"], net["book"] + 25 / 1e4 * net["turnover"], rtol=0, atol=1e-15
    )
    daily = portfolio_returns(frame, top_k=k, cost_bps=0)
    assert daily["turnover"].iloc[1:].mean() > 3 * net["turnover"].iloc[1:].mean()


def test_topk_dropout_sells_the_lowest_ranked_held_names_for_the_best_candidates() -> None:
    order = pd.Series({"A": 9.0, "E": 8.0, "B": 7.0, "F": 6.0, "C": 2.0, "D": 1.0})
    # Held A, B, C, D; candidates E, F: the two lowest of all six (C, D) go, E and F come in.
    assert topk_dropout(["A", "B", "C", "D"], order, k=4, n_drop=2) == ["A", "B", "E", "F"]
    # A held name without a score today is sold too; the book refills to k from candidates.
    assert topk_dropout(["A", "X"], order, k=2, n_drop=1) == ["A", "E"]
    # n_drop 0: nothing is replaced once full.
    assert topk_dropout(["C", "D"], order, k=2, n_drop=0) == ["C", "D"]


def test_excess_return_of_a_shuffled_signal_has_an_interval_that_covers_zero() -> None:
    rng = np.random.default_rng(8)
    days = pd.bdate_range("2019-01-02", periods=750).date
    symbols = [f"S{i:02d}" for i in range(30)]
    signal = rng.normal(size=(len(days), len(symbols)))
    rets = 0.004 * signal + rng.normal(0, 0.02, signal.shape)
    frame = pd.DataFrame(
        {
            "trade_date": np.repeat(days, len(symbols)),
            "symbol": np.tile(symbols, len(days)),
            "pred": signal.ravel(),
            "trade_ret": rets.ravel(),
        }
    )
    shuffled = frame.assign(pred=rng.permutation(frame["pred"].to_numpy()))

    real = backtest(frame, top_k=5, cost_bps=5, seed=2).stats
    noise = backtest(shuffled, top_k=5, cost_bps=5, seed=2).stats

    # Before costs a shuffled signal's excess is noise; after costs its daily churn loses.
    assert noise["gross_excess_ir_ci_low"] < 0 < noise["gross_excess_ir_ci_high"]
    assert noise["excess_annual_return"] < noise["gross_excess_annual_return"]
    assert real["excess_ir_ci_low"] > 0  # the real signal's interval does not cover zero
    assert real["gross_excess_annual_return"] > real["excess_annual_return"]
    assert real["cost_drag"] == pytest.approx(5 / 1e4 * real["turnover"] * 252)


def _random_frame(n_days: int = 120, n_symbols: int = 20, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    days = pd.bdate_range("2021-01-04", periods=n_days).date
    symbols = [f"S{i:02d}" for i in range(n_symbols)]
    return pd.DataFrame(
        [(d, s, rng.normal(), rng.normal(0, 0.02)) for d in days for s in symbols],
        columns=["trade_date", "symbol", "pred", "trade_ret"],
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"strategy": "topk"},
        {"strategy": "topk_dropout", "n_drop": 2},
        {"strategy": "long_short"},
        {"rebalance_days": 5, "score_halflife": 3.0, "max_names_traded": 2},
    ],
)
def test_zero_cost_reproduces_the_gross_curve_for_every_strategy(changes: dict) -> None:
    frame = _random_frame()
    free = portfolio_returns(frame, top_k=5, cost_bps=0, **changes)
    np.testing.assert_array_equal(free["book"], free["gross"])
    dear = portfolio_returns(frame, top_k=5, cost_bps=20, **changes)
    np.testing.assert_allclose(dear["gross"], free["gross"], rtol=0, atol=1e-15)
    assert (dear["book"] <= dear["gross"]).all() and (dear["book"] < dear["gross"]).any()


def test_rebalancing_every_n_days_trades_only_on_those_days() -> None:
    out = portfolio_returns(_random_frame(), top_k=5, cost_bps=10, rebalance_days=5)
    traded_days = np.flatnonzero(out["turnover"].to_numpy() > 0)
    assert len(traded_days) > 5 and (traded_days % 5 == 0).all()
    daily = portfolio_returns(_random_frame(), top_k=5, cost_bps=10)
    assert out["turnover"].sum() < 0.5 * daily["turnover"].sum()


def test_score_smoothing_lowers_turnover_and_uses_no_later_score() -> None:
    frame = _random_frame()
    raw = portfolio_returns(frame, top_k=5, cost_bps=10)
    smooth = portfolio_returns(frame, top_k=5, cost_bps=10, score_halflife=5.0)
    assert smooth["turnover"].mean() < 0.7 * raw["turnover"].mean()
    # Rewriting every score after day 60 changes nothing up to day 60.
    days = sorted(frame["trade_date"].unique())
    later = frame["trade_date"] > days[60]
    changed = frame.assign(pred=np.where(later, -frame["pred"] * 7, frame["pred"]))
    other = portfolio_returns(changed, top_k=5, cost_bps=10, score_halflife=5.0)
    pd.testing.assert_frame_equal(other.iloc[:61], smooth.iloc[:61])
    assert not other.iloc[61:].equals(smooth.iloc[61:])


def test_buy_and_sell_costs_apply_per_side_with_a_minimum_per_trade() -> None:
    frame = scored(
        [[4, 3, 2, 1], [4, 3, 2, 1], [1, 2, 3, 4]],
        [[0.01, 0.02, 0.0, -0.01], [0.03, 0.01, 0.0, 0.0], [0.0, 0.0, 0.02, 0.04]],
    )
    out = portfolio_returns(frame, top_k=2, buy_cost_bps=5, sell_cost_bps=15)
    # Day 1 buys A, B (weight 1.0 bought); day 3 sells A, B and buys C, D (1.0 each way).
    assert out["cost"].tolist() == pytest.approx([5e-4, 0.0, 5e-4 + 15e-4])
    # A minimum of 100 per trade on a capital of 100,000 is 10 bps per name: the buys of 0.5
    # weight (2.5 bps at 5 bps) pay the minimum; the sells at 30 bps (15 bps each) do not.
    floored = portfolio_returns(frame, top_k=2, buy_cost_bps=5, sell_cost_bps=30,
                                min_cost=100, capital=100_000)  # fmt: skip
    assert floored["cost"].tolist() == pytest.approx([2e-3, 0.0, 2 * 1e-3 + 2 * 1.5e-3])


def test_a_cap_on_names_traded_holds_back_the_rest_of_a_rebalance() -> None:
    frame = _random_frame()
    # A flat fee of 1 bp per trade and nothing else: cost / 1e-4 counts the trades of a day.
    fee = {"cost_bps": 0, "min_cost": 1, "capital": 10_000}
    capped = portfolio_returns(frame, top_k=6, max_names_traded=2, **fee)
    free = portfolio_returns(frame, top_k=6, **fee)
    trades, free_trades = (np.rint(out["cost"] / 1e-4).astype(int) for out in (capped, free))
    assert free_trades.iloc[0] == 6 and trades.iloc[0] == 2  # the book fills two names a day
    assert trades.max() == 4 and free_trades.max() > 4  # two sold and two bought at most
    assert capped["turnover"].max() <= 4 / 6 + 1e-12


def test_long_short_strategy_and_a_named_second_benchmark() -> None:
    frame = _random_frame()
    out = portfolio_returns(frame, top_k=4, cost_bps=10, strategy="long_short",
                            benchmark_symbol="S03")  # fmt: skip
    np.testing.assert_allclose(out["book"], out["long_short"], rtol=0, atol=1e-15)
    s03 = frame[frame["symbol"] == "S03"].set_index("trade_date")["trade_ret"]
    np.testing.assert_array_equal(out["benchmark2"], s03.reindex(out.index))
    stats = backtest(frame, top_k=4, benchmark_symbol="S03").stats
    for key in ("benchmark2_sharpe", "excess2_annual_return", "gross_excess2_ir",
                "excess_annual_return_ci_low", "excess_annual_return_ci_high"):  # fmt: skip
        assert np.isfinite(stats[key]), key
    assert stats["excess_annual_return_ci_low"] < stats["excess_annual_return"]
    assert stats["excess_annual_return"] < stats["excess_annual_return_ci_high"]
    with pytest.raises(ValueError, match="benchmark symbol 'SPY'"):
        portfolio_returns(frame, benchmark_symbol="SPY")
