"""Figures logged to MLflow: equity curve vs benchmark, drawdown, IC over time, importance."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ml.evaluation.backtest import drawdown_curve
from ml.evaluation.metrics import daily_ic


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def equity_figure(returns: pd.DataFrame, title: str) -> Any:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 4))
    index = pd.to_datetime(returns.index)
    lines = [("book", "-", "book, net of costs"), ("gross", "-", "book, before costs"),
             ("long_short", "--", "long/short spread"), ("benchmark", ":", "equal-weight"),
             ("benchmark2", "-.", "second benchmark")]  # fmt: skip
    for col, style, label in lines:
        if col in returns:
            alpha = 0.5 if col == "gross" else 1.0
            equity = (1 + returns[col].fillna(0)).cumprod().to_numpy()
            ax.plot(index, equity, style, label=label, alpha=alpha)
    ax.set_yscale("log")
    ax.set_title(title)
    ax.set_ylabel("growth of 1")
    ax.legend()
    fig.tight_layout()
    return fig


def drawdown_figure(returns: pd.DataFrame, title: str) -> Any:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 3))
    index = pd.to_datetime(returns.index)
    for col in ("book", "benchmark"):
        ax.fill_between(index, drawdown_curve(returns[col]).to_numpy(), 0, alpha=0.4, label=col)
    ax.set_title(title)
    ax.set_ylabel("drawdown")
    ax.legend()
    fig.tight_layout()
    return fig


def ic_figure(scored: pd.DataFrame, title: str) -> Any:
    plt = _plt()
    ic = daily_ic(scored.dropna(subset=["pred", "label"]), "pred", "label", method="spearman")
    fig, ax = plt.subplots(figsize=(9, 3.5))
    index = pd.to_datetime(ic.index)
    ax.plot(index, ic.rolling(63, min_periods=10).mean().to_numpy(), label="RankIC, 63-day mean")
    ax2 = ax.twinx()
    ax2.plot(index, ic.cumsum().to_numpy(), color="grey", lw=0.8, label="cumulative RankIC")
    ax.axhline(0, color="black", lw=0.5)
    ax.set_title(title)
    ax.legend(loc="upper left")
    ax2.legend(loc="lower right")
    fig.tight_layout()
    return fig


def importance_figure(importance: dict[str, float], title: str, top: int = 25) -> Any:
    plt = _plt()
    items = sorted(importance.items(), key=lambda kv: kv[1], reverse=True)[:top][::-1]
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.3 * len(items))))
    ax.barh([k for k, _ in items], [v for _, v in items])
    ax.set_title(title)
    fig.tight_layout()
    return fig
