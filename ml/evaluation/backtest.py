"""Backtest of daily scores: top-k long and long/short portfolios against the universe.

Each trading day t the portfolio takes the k best-scored symbols (equal weights; long/short also
shorts the k worst) and, since the scores of t are known only after the close of t, trades at
the close of t+1 and holds to the close of t+2 (`trade_ret`, from trade_ret_1d: see
ml/evaluation/walk_forward.traded_returns). Costs are charged on turnover, sum |w_t - w_{t-1}|, at `cost_bps` basis points.
The benchmark is the equal-weight portfolio of every symbol scored that day (rebalanced daily,
no costs), always reported beside the model. Sharpe ratios come with a block-bootstrap
confidence interval, because a few years of daily returns leave a wide one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

TRADING_DAYS = 252
# Named crisis windows; a stress test runs on those the out-of-sample predictions cover.
STRESS_WINDOWS = {
    "gfc_2008_09": (date(2008, 9, 1), date(2009, 6, 30)),
    "covid_2020": (date(2020, 2, 15), date(2020, 6, 30)),
}
STRESS_COST_MULTIPLIERS = (1, 2, 5)


@dataclass
class BacktestResult:
    returns: pd.DataFrame  # per day: long, long_short, benchmark (net of costs), turnover
    stats: dict[str, float]


def portfolio_returns(
    scored: pd.DataFrame,
    top_k: int = 2,
    cost_bps: float = 10.0,
    ret_col: str = "trade_ret",
    n_drop: int | None = None,
) -> pd.DataFrame:
    """Daily net returns of the top-k long and long/short books and of the benchmark.

    `scored` has trade_date, symbol, pred and `ret_col`: the return of a book formed on the
    signal of trade_date (close[t+1] -> close[t+2]). The long book is the top k of each day
    (rebuilt daily), or with `n_drop` Qlib's TopkDropout (`topk_dropout`); the long/short
    book is rebuilt daily."""
    frame = scored.dropna(subset=["pred", ret_col])
    prev_long: pd.Series = pd.Series(dtype=float)
    prev_ls: pd.Series = pd.Series(dtype=float)
    out = []
    for day, group in frame.groupby("trade_date", sort=True):
        today = group.set_index("symbol")
        n = len(today)
        k = min(top_k, n // 2) if n >= 2 else 0
        bench = float(today[ret_col].mean())
        if k == 0:
            out.append((day, np.nan, np.nan, bench, 0.0, 0.0))
            continue
        order = today["pred"].sort_values(ascending=False, kind="mergesort")
        if n_drop is None:
            long_names = list(order.index[:k])
        else:
            long_names = topk_dropout(list(prev_long.index), order, k, n_drop)
        long_w = pd.Series(1.0 / k, index=long_names)
        ls_w = pd.concat(
            [pd.Series(1.0 / k, index=order.index[:k]), pd.Series(-1.0 / k, index=order.index[-k:])]
        )
        turn_long = _turnover(prev_long, long_w)
        turn_ls = _turnover(prev_ls, ls_w)
        cost = cost_bps / 1e4
        r = today[ret_col]
        long_ret = float((long_w * r.reindex(long_w.index)).sum()) - cost * turn_long
        ls_ret = float((ls_w * r.reindex(ls_w.index)).sum()) - cost * turn_ls
        out.append((day, long_ret, ls_ret, bench, turn_long, turn_ls))
        prev_long, prev_ls = long_w, ls_w
    return pd.DataFrame(
        out,
        columns=["trade_date", "long", "long_short", "benchmark", "turnover", "turnover_ls"],
    ).set_index("trade_date")


def topk_dropout(held: list[str], order: pd.Series, k: int, n_drop: int) -> list[str]:
    """Qlib's TopkDropout: keep the k held names but sell the (at most) n_drop of them that
    rank lowest among the held names and the best not-held candidates, and buy as many of
    those candidates. `order`: today's scores, best first. A held name without a score today
    is sold as well (it cannot be marked). Once the book is full, at most n_drop names are
    sold and n_drop bought a day: turnover <= 2 n_drop / k.
    """
    scored = [name for name in held if name in order.index]
    held_set = set(scored)
    candidates = [name for name in order.index if name not in held_set]
    candidates = candidates[: max(n_drop + k - len(scored), 0)]
    combined = order.reindex(scored + candidates).sort_values(ascending=False, kind="mergesort")
    worst = set(combined.index[len(combined) - n_drop :]) if n_drop > 0 else set()
    keep = [name for name in scored if name not in worst]
    return keep + candidates[: k - len(keep)]


def _turnover(before: pd.Series, after: pd.Series) -> float:
    both = before.index.union(after.index)
    return float(
        (after.reindex(both, fill_value=0) - before.reindex(both, fill_value=0)).abs().sum()
    )


def performance(
    returns: pd.Series, seed: int = 0, n_boot: int = 500, block: int = 20
) -> dict[str, float]:
    """Annualised return (geometric), volatility, Sharpe (+ bootstrap 95% CI), Sortino,
    max drawdown and Calmar of a daily return series."""
    r = returns.dropna().to_numpy(dtype=float)
    if len(r) < 2:
        keys = ("annual_return", "volatility", "sharpe", "sharpe_ci_low", "sharpe_ci_high",
                "sortino", "max_drawdown", "calmar")  # fmt: skip
        return dict.fromkeys(keys, float("nan")) | {"n_days": float(len(r))}
    equity = np.cumprod(1 + r)
    annual = float(equity[-1] ** (TRADING_DAYS / len(r)) - 1) if equity[-1] > 0 else -1.0
    vol = float(r.std(ddof=1) * np.sqrt(TRADING_DAYS))
    sharpe = _sharpe(r)
    downside = np.sqrt(np.mean(np.minimum(r, 0) ** 2)) * np.sqrt(TRADING_DAYS)
    peak = np.maximum.accumulate(np.r_[1.0, equity])[1:]
    max_dd = float(min(0.0, (equity / peak - 1).min()))
    low, high = bootstrap_sharpe_ci(r, seed=seed, n_boot=n_boot, block=block)
    return {
        "annual_return": annual,
        "volatility": vol,
        "sharpe": sharpe,
        "sharpe_ci_low": low,
        "sharpe_ci_high": high,
        "sortino": float(r.mean() * TRADING_DAYS / downside) if downside > 0 else float("nan"),
        "max_drawdown": max_dd,
        "calmar": float(annual / abs(max_dd)) if max_dd < 0 else float("nan"),
        "n_days": float(len(r)),
    }


def _sharpe(r: np.ndarray) -> float:
    std = r.std(ddof=1)
    return float(r.mean() / std * np.sqrt(TRADING_DAYS)) if std > 0 else float("nan")


def bootstrap_sharpe_ci(
    r: np.ndarray, seed: int = 0, n_boot: int = 500, block: int = 20, level: float = 0.95
) -> tuple[float, float]:
    """Moving-block bootstrap of the Sharpe ratio (blocks keep short-range autocorrelation)."""
    n = len(r)
    if n < 2 * block:
        block = max(1, n // 4)
    rng = np.random.default_rng(seed)
    n_blocks = int(np.ceil(n / block))
    starts = rng.integers(0, n - block + 1, size=(n_boot, n_blocks))
    idx = (starts[:, :, None] + np.arange(block)).reshape(n_boot, -1)[:, :n]
    samples = r[idx]
    std = samples.std(axis=1, ddof=1)
    safe = np.where(std > 0, std, 1.0)
    sharpes = np.where(std > 0, samples.mean(axis=1) / safe * np.sqrt(TRADING_DAYS), np.nan)
    alpha = (1 - level) / 2
    return float(np.nanquantile(sharpes, alpha)), float(np.nanquantile(sharpes, 1 - alpha))


def drawdown_curve(returns: pd.Series) -> pd.Series:
    equity = (1 + returns.fillna(0)).cumprod()
    return equity / equity.cummax() - 1


def backtest(
    scored: pd.DataFrame,
    top_k: int = 2,
    cost_bps: float = 10.0,
    seed: int = 0,
    n_drop: int | None = None,
) -> BacktestResult:
    """Portfolio returns and stats: `<stat>` for the top-k long book, `ls_<stat>` for
    long/short, `benchmark_<stat>` for the equal-weight universe; the long book's excess
    over the benchmark after costs (`excess_annual_return`, `excess_ir` with its bootstrap
    interval `excess_ir_ci_low`/`_high`, `excess_max_drawdown`) and before
    (`gross_excess_*`), `cost_drag` (annual cost of its turnover), and mean turnover."""
    returns = portfolio_returns(scored, top_k=top_k, cost_bps=cost_bps, n_drop=n_drop)
    stats: dict[str, float] = {}
    for prefix, col in (("", "long"), ("ls_", "long_short"), ("benchmark_", "benchmark")):
        for key, value in performance(returns[col], seed=seed).items():
            stats[f"{prefix}{key}"] = value
    # Excess over the equal-weight benchmark, net and gross of costs: its Sharpe is the
    # information ratio, with the same block-bootstrap interval.
    cost = cost_bps / 1e4
    excess = returns["long"] - returns["benchmark"]
    gross_excess = excess + cost * returns["turnover"]
    for prefix, series in (("excess_", excess), ("gross_excess_", gross_excess)):
        for key, value in performance(series, seed=seed).items():
            if key in (
                "annual_return",
                "sharpe",
                "sharpe_ci_low",
                "sharpe_ci_high",
                "max_drawdown",
            ):
                stats[f"{prefix}{key.replace('sharpe', 'ir')}"] = value
    stats["cost_drag"] = (
        float(cost * returns["turnover"].mean() * TRADING_DAYS) if len(returns) else float("nan")
    )
    stats["turnover"] = float(returns["turnover"].mean()) if len(returns) else float("nan")
    stats["ls_turnover"] = float(returns["turnover_ls"].mean()) if len(returns) else float("nan")
    return BacktestResult(returns=returns, stats=stats)


def stress_tests(
    scored: pd.DataFrame,
    top_k: int = 2,
    cost_bps: float = 10.0,
    seed: int = 0,
    n_drop: int | None = None,
) -> dict[str, dict[str, float]]:
    """The backtest on each named crisis window the scores cover, at costs x1, x2 and x5."""
    out: dict[str, dict[str, float]] = {}
    for name, (start, end) in STRESS_WINDOWS.items():
        window = scored[(scored["trade_date"] >= start) & (scored["trade_date"] <= end)]
        if window["trade_date"].nunique() < 20:
            continue
        for mult in STRESS_COST_MULTIPLIERS:
            stats = backtest(window, top_k, cost_bps * mult, seed, n_drop).stats
            keep = ("annual_return", "sharpe", "max_drawdown", "ls_annual_return", "ls_sharpe",
                    "benchmark_annual_return", "benchmark_sharpe", "benchmark_max_drawdown")  # fmt: skip
            out[f"{name}_cost_x{mult}"] = {k: stats[k] for k in keep}
    return out


def summarize(stress: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Flat metric names for MLflow: stress.<window>_cost_x<m>.<stat>."""
    return {f"stress.{w}.{k}": v for w, stats in stress.items() for k, v in stats.items()}
