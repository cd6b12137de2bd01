"""Backtest of daily scores: the configured strategy's book against the universe.

Each trading day t the strategy (`ml.config.BacktestConfig`: top-k equal weight, Qlib's
TopkDropout or long/short, rebalanced every day or every N days, optionally on smoothed scores)
picks its names, and, since the scores of t are known only after the close of t, trades at the
close of t+1 and holds to the close of t+2 (`trade_ret`, from trade_ret_1d: see
ml/evaluation/walk_forward.traded_returns). Costs are charged per trade on the weight traded,
at the buy or the sell rate, never less than the minimum cost per trade on the book's capital;
a cap on the names bought (and sold) a day holds back the rest of a rebalance. Weights are
reset to 1/k at each day's close (the turnover of that drift is not charged).
The benchmark is the equal-weight portfolio of every symbol scored that day (rebalanced daily,
no costs), always reported beside the model, with an optional second benchmark (a symbol of the
data the user names). Sharpe ratios and excess returns come with a block-bootstrap confidence
interval, because a few years of daily returns leave a wide one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from ml.config import BacktestConfig

TRADING_DAYS = 252
# Named crisis windows; a stress test runs on those the out-of-sample predictions cover.
STRESS_WINDOWS = {
    "gfc_2008_09": (date(2008, 9, 1), date(2009, 6, 30)),
    "covid_2020": (date(2020, 2, 15), date(2020, 6, 30)),
}
STRESS_COST_MULTIPLIERS = (1, 2, 5)


@dataclass
class BacktestResult:
    # per day: book (net of costs), gross, long_short (net), benchmark, benchmark2 (when
    # configured), turnover, turnover_ls, cost
    returns: pd.DataFrame
    stats: dict[str, float]


def strategy_config(config: BacktestConfig | None = None, **changes: Any) -> BacktestConfig:
    """`config` (default: BacktestConfig()) with `changes` applied and validated."""
    base = (config or BacktestConfig()).model_dump()
    return BacktestConfig.model_validate({**base, **changes})


def portfolio_returns(
    scored: pd.DataFrame,
    config: BacktestConfig | None = None,
    ret_col: str = "trade_ret",
    **changes: Any,
) -> pd.DataFrame:
    """Daily returns of the strategy's book (net and gross of costs), of the daily rebuilt
    top-k/bottom-k long/short spread, and of the benchmark(s).

    `scored` has trade_date, symbol, pred and `ret_col`: the return of a book formed on the
    signal of trade_date (close[t+1] -> close[t+2]). `changes` override fields of `config`
    (`portfolio_returns(frame, top_k=5, cost_bps=0)`)."""
    cfg = strategy_config(config, **changes)
    frame = scored.dropna(subset=["pred", ret_col])
    pred = frame.pivot(index="trade_date", columns="symbol", values="pred").sort_index()
    rets = frame.pivot(index="trade_date", columns="symbol", values=ret_col)
    rets = rets.reindex(index=pred.index, columns=pred.columns)
    if cfg.score_halflife:
        # Each symbol's exponentially weighted score, from its own past scores only.
        smoothed = pred.ewm(halflife=cfg.score_halflife, ignore_na=True).mean()
        pred = smoothed.where(pred.notna())
    bench2 = None
    if cfg.benchmark_symbol is not None:
        if cfg.benchmark_symbol not in rets.columns:
            raise ValueError(
                f"benchmark symbol {cfg.benchmark_symbol!r} has no scored returns "
                "(is it in the universe and the label table?)"
            )
        bench2 = rets[cfg.benchmark_symbol].to_numpy(dtype=float)
    symbols = pred.columns.to_numpy()
    P, R = pred.to_numpy(dtype=float), rets.to_numpy(dtype=float)
    column = {s: j for j, s in enumerate(symbols)}
    book = _Book(cfg, column)
    daily_ls = strategy_config(cfg, strategy="long_short", n_drop=None, rebalance_days=1,
                               max_names_traded=None)  # fmt: skip
    spread = _Book(daily_ls, column)
    rows = []
    for i, day in enumerate(pred.index):
        idx = np.flatnonzero(np.isfinite(P[i]) & np.isfinite(R[i]))
        n = len(idx)
        bench = float(R[i, idx].mean()) if n else float("nan")
        k = min(cfg.top_k, n // 2) if n >= 2 else 0
        order_idx = idx[np.argsort(-P[i, idx], kind="stable")]
        order = pd.Series(P[i, order_idx], index=symbols[order_idx])
        gross, cost, turn = book.step(order, R[i], k, rebalance=i % cfg.rebalance_days == 0)
        ls_gross, ls_cost, ls_turn = spread.step(order, R[i], k, rebalance=True)
        rows.append((day, gross - cost, gross, ls_gross - ls_cost, bench,
                     float(bench2[i]) if bench2 is not None else float("nan"),
                     turn, ls_turn, cost))  # fmt: skip
    out = pd.DataFrame(
        rows,
        columns=[
            "trade_date",
            "book",
            "gross",
            "long_short",
            "benchmark",
            "benchmark2",
            "turnover",
            "turnover_ls",
            "cost",
        ],  # fmt: skip
    ).set_index("trade_date")
    return out if bench2 is not None else out.drop(columns="benchmark2")


def trading_cost(
    traded: np.ndarray, buy_bps: float, sell_bps: float, min_cost: float = 0.0
) -> tuple[float, float]:
    """Cost and turnover of trading the weight changes `traded` (fractions of the book, + bought,
    - sold): each trade pays the buy or the sell rate on its size, and at least `min_cost` (a
    fraction of the book). The backtest and the RL environment (ml/models/rl_env.py) both
    charge this."""
    traded = np.asarray(traded, dtype=float)
    traded = traded[traded != 0.0]
    size = np.abs(traded)
    rate = np.where(traded > 0, buy_bps, sell_bps) / 1e4
    # Summed in order, left to right, like the loop this replaced: the same floats.
    cost = sum(np.maximum(rate * size, min_cost).tolist(), 0.0)
    return float(cost), float(sum(size.tolist(), 0.0))


class _Book:
    """The names a strategy holds from day to day, and what each day's trades cost."""

    def __init__(self, cfg: BacktestConfig, column: dict[str, int]) -> None:
        self.cfg, self.column = cfg, column
        self.long: list[str] = []
        self.short: list[str] = []
        self.weights: dict[str, float] = {}

    def step(
        self, order: pd.Series, ret: np.ndarray, k: int, rebalance: bool
    ) -> tuple[float, float, float]:
        """Trade to today's book; return its gross return, cost and turnover."""
        cfg = self.cfg
        if k == 0:
            self.long, self.short = [], []
        else:
            self.long = self._target(self.long, order, k, rebalance, cfg.kind)
            if cfg.kind == "long_short":
                # The short leg is a long leg on the reversed order (worst score first).
                reverse = pd.Series(-order.to_numpy()[::-1], index=order.index[::-1])
                self.short = self._target(self.short, reverse, k, rebalance, "topk")
        weights = {s: 1.0 / k for s in self.long} | {s: -1.0 / k for s in self.short}
        names = weights.keys() | self.weights.keys()
        traded = np.array([weights.get(s, 0.0) - self.weights.get(s, 0.0) for s in names])
        cost, turnover = trading_cost(traded, cfg.buy_bps, cfg.sell_bps, cfg.min_cost / cfg.capital)
        self.weights = weights
        if not weights:
            return (float("nan") if k == 0 else 0.0), cost, turnover
        gross = float(sum(w * ret[self.column[s]] for s, w in weights.items()))
        return gross, cost, turnover

    def _target(
        self, held: list[str], order: pd.Series, k: int, rebalance: bool, kind: str
    ) -> list[str]:
        scored = [s for s in held if s in order.index]  # a name without a score is sold
        if not rebalance:
            want = scored[:k]
        elif kind == "topk_dropout":
            want = topk_dropout(held, order, k, self.cfg.n_drop or 0)
        else:
            want = list(order.index[:k])
        cap = self.cfg.max_names_traded
        if cap is None:
            return want
        # At most `cap` names sold (the lowest scored first) and `cap` bought (best first).
        wanted = set(want)
        rank = {s: i for i, s in enumerate(order.index)}
        sells = sorted((s for s in scored if s not in wanted), key=rank.__getitem__, reverse=True)
        kept = [s for s in scored if s not in set(sells[:cap])]
        held_set = set(scored)
        buys = sorted((s for s in want if s not in held_set), key=rank.__getitem__)
        return kept + buys[: max(0, min(cap, k - len(kept)))]


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


def performance(
    returns: pd.Series, seed: int = 0, n_boot: int = 500, block: int = 20
) -> dict[str, float]:
    """Annualised return (geometric), volatility, Sharpe (+ bootstrap 95% CI), Sortino,
    max drawdown and Calmar of a daily return series."""
    r = returns.dropna().to_numpy(dtype=float)
    if len(r) < 2:
        keys = ("annual_return", "annual_return_ci_low", "annual_return_ci_high", "volatility",
                "sharpe", "sharpe_ci_low", "sharpe_ci_high", "sortino", "max_drawdown", "calmar")  # fmt: skip
        return dict.fromkeys(keys, float("nan")) | {"n_days": float(len(r))}
    equity = np.cumprod(1 + r)
    annual = float(equity[-1] ** (TRADING_DAYS / len(r)) - 1) if equity[-1] > 0 else -1.0
    vol = float(r.std(ddof=1) * np.sqrt(TRADING_DAYS))
    sharpe = _sharpe(r)
    downside = np.sqrt(np.mean(np.minimum(r, 0) ** 2)) * np.sqrt(TRADING_DAYS)
    peak = np.maximum.accumulate(np.r_[1.0, equity])[1:]
    max_dd = float(min(0.0, (equity / peak - 1).min()))
    samples = _block_samples(r, seed, n_boot, block)  # one set of resamples for both intervals
    low, high = _sharpe_ci(samples)
    ret_low, ret_high = _annual_return_ci(samples)
    return {
        "annual_return": annual,
        "annual_return_ci_low": ret_low,
        "annual_return_ci_high": ret_high,
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


def _block_samples(r: np.ndarray, seed: int, n_boot: int, block: int) -> np.ndarray:
    """Moving-block bootstrap resamples of `r` (blocks keep short-range autocorrelation)."""
    n = len(r)
    if n < 2 * block:
        block = max(1, n // 4)
    rng = np.random.default_rng(seed)
    n_blocks = int(np.ceil(n / block))
    starts = rng.integers(0, n - block + 1, size=(n_boot, n_blocks))
    idx = (starts[:, :, None] + np.arange(block)).reshape(n_boot, -1)[:, :n]
    samples: np.ndarray = r[idx]
    return samples


def bootstrap_sharpe_ci(
    r: np.ndarray, seed: int = 0, n_boot: int = 500, block: int = 20, level: float = 0.95
) -> tuple[float, float]:
    """Block-bootstrap interval of the annualised Sharpe ratio."""
    return _sharpe_ci(_block_samples(r, seed, n_boot, block), level)


def bootstrap_annual_return_ci(
    r: np.ndarray, seed: int = 0, n_boot: int = 500, block: int = 20, level: float = 0.95
) -> tuple[float, float]:
    """Block-bootstrap interval of the geometric annual return (same resamples as the
    Sharpe interval for the same seed)."""
    return _annual_return_ci(_block_samples(r, seed, n_boot, block), level)


def _sharpe_ci(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    std = samples.std(axis=1, ddof=1)
    safe = np.where(std > 0, std, 1.0)
    sharpes = np.where(std > 0, samples.mean(axis=1) / safe * np.sqrt(TRADING_DAYS), np.nan)
    alpha = (1 - level) / 2
    return float(np.nanquantile(sharpes, alpha)), float(np.nanquantile(sharpes, 1 - alpha))


def _annual_return_ci(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    with np.errstate(invalid="ignore", divide="ignore"):
        growth = np.log1p(np.maximum(samples, -1 + 1e-12)).sum(axis=1)
    annual = np.expm1(growth * TRADING_DAYS / samples.shape[1])
    alpha = (1 - level) / 2
    return float(np.nanquantile(annual, alpha)), float(np.nanquantile(annual, 1 - alpha))


def drawdown_curve(returns: pd.Series) -> pd.Series:
    equity = (1 + returns.fillna(0)).cumprod()
    return equity / equity.cummax() - 1


def backtest(
    scored: pd.DataFrame,
    config: BacktestConfig | None = None,
    seed: int = 0,
    **changes: Any,
) -> BacktestResult:
    """Portfolio returns and stats of the configured strategy (`changes` override `config`).

    `<stat>` for the book after costs and `gross_<stat>` before, `ls_<stat>` for the daily
    long/short spread, `benchmark_<stat>` for the equal-weight universe; the book's excess over
    it after costs (`excess_annual_return` with its bootstrap interval
    `excess_annual_return_ci_low`/`_high`, `excess_ir` with `excess_ir_ci_low`/`_high`,
    `excess_max_drawdown`) and before (`gross_excess_*`); with a second benchmark the same as
    `benchmark2_<stat>` and `excess2_*`/`gross_excess2_*`; `cost_drag` (annual cost paid) and
    mean daily turnover."""
    cfg = strategy_config(config, **changes)
    returns = portfolio_returns(scored, cfg)
    stats: dict[str, float] = {}
    series = [("", "book"), ("gross_", "gross"), ("ls_", "long_short"), ("benchmark_", "benchmark")]
    if "benchmark2" in returns:
        series.append(("benchmark2_", "benchmark2"))
    for prefix, col in series:
        for key, value in performance(returns[col], seed=seed).items():
            if prefix == "gross_" and key not in EXCESS_KEYS:
                continue
            if not key.startswith("annual_return_ci"):
                stats[f"{prefix}{key}"] = value
    # Excess over each benchmark, net and gross of costs: its Sharpe is the information ratio,
    # with the same block-bootstrap interval.
    benchmarks = [("", "benchmark")] + ([("2", "benchmark2")] if "benchmark2" in returns else [])
    for suffix, bench in benchmarks:
        for prefix, col in (("excess", "book"), ("gross_excess", "gross")):
            for key, value in performance(returns[col] - returns[bench], seed=seed).items():
                if key in EXCESS_KEYS:
                    stats[f"{prefix}{suffix}_{key.replace('sharpe', 'ir')}"] = value
    n = len(returns)
    stats["cost_drag"] = float(returns["cost"].mean() * TRADING_DAYS) if n else float("nan")
    stats["turnover"] = float(returns["turnover"].mean()) if n else float("nan")
    stats["ls_turnover"] = float(returns["turnover_ls"].mean()) if n else float("nan")
    return BacktestResult(returns=returns, stats=stats)


EXCESS_KEYS = ("annual_return", "annual_return_ci_low", "annual_return_ci_high", "sharpe",
               "sharpe_ci_low", "sharpe_ci_high", "max_drawdown")  # fmt: skip


def stress_tests(
    scored: pd.DataFrame,
    config: BacktestConfig | None = None,
    seed: int = 0,
    **changes: Any,
) -> dict[str, dict[str, float]]:
    """The backtest on each named crisis window the scores cover, at costs x1, x2 and x5."""
    cfg = strategy_config(config, **changes)
    out: dict[str, dict[str, float]] = {}
    for name, (start, end) in STRESS_WINDOWS.items():
        window = scored[(scored["trade_date"] >= start) & (scored["trade_date"] <= end)]
        if window["trade_date"].nunique() < 20:
            continue
        for mult in STRESS_COST_MULTIPLIERS:
            stats = backtest(window, cfg.scaled_costs(mult), seed).stats
            keep = ("annual_return", "sharpe", "max_drawdown", "ls_annual_return", "ls_sharpe",
                    "benchmark_annual_return", "benchmark_sharpe", "benchmark_max_drawdown")  # fmt: skip
            out[f"{name}_cost_x{mult}"] = {k: stats[k] for k in keep}
    return out


def summarize(stress: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Flat metric names for MLflow: stress.<window>_cost_x<m>.<stat>."""
    return {f"stress.{w}.{k}": v for w, stats in stress.items() for k, v in stats.items()}
