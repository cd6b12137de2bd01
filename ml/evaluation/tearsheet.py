"""A candidate's tear sheet: what a quant reads before trusting a signal.

The returns part (cumulative and rolling returns, drawdowns, monthly returns table, the
statistics with and against the benchmark) is quantstats' HTML report of the strategy's book
after costs against the equal-weight benchmark. quantstats knows nothing of signals, costs or
a second benchmark, so this module adds, as a section of the same page and as PNGs:
- the strategy and its figures with and without costs, against each benchmark;
- IC and RankIC by month (mean of the daily cross-sectional correlations);
- quantile returns: each day the scored symbols in five groups by score, the mean traded
  return of each group, cumulated (the spread of the top over the bottom group beside them).
alphalens-reloaded computes the last two from a price panel and pulls in IPython; the scored
frame already holds each row's traded return, so they are a few lines of pandas here.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.config import BacktestConfig
from ml.evaluation.backtest import BacktestResult
from ml.evaluation.metrics import daily_ic

QUANTILES = 5
# Figures of the tear sheet and the PNG each is written to.
FIGURES = ("equity", "quantiles", "monthly_ic")
# (label, net key, gross key) rows of the "with and without costs" table.
COST_ROWS = (
    ("Annual return", "annual_return", "gross_annual_return"),
    ("Sharpe", "sharpe", "gross_sharpe"),
    ("Max drawdown", "max_drawdown", "gross_max_drawdown"),
    ("Excess return (equal-weight)", "excess_annual_return", "gross_excess_annual_return"),
    ("Excess return, 95% CI low", "excess_annual_return_ci_low",
     "gross_excess_annual_return_ci_low"),
    ("Excess return, 95% CI high", "excess_annual_return_ci_high",
     "gross_excess_annual_return_ci_high"),
    ("Information ratio (equal-weight)", "excess_ir", "gross_excess_ir"),
    ("Excess max drawdown", "excess_max_drawdown", "gross_excess_max_drawdown"),
    ("Excess return (second benchmark)", "excess2_annual_return", "gross_excess2_annual_return"),
    ("Information ratio (second benchmark)", "excess2_ir", "gross_excess2_ir"),
)  # fmt: skip


@dataclass
class TearSheet:
    html: Path
    figures: dict[str, Path]
    monthly_ic: pd.DataFrame
    quantile_returns: pd.DataFrame


def monthly_ic(scored: pd.DataFrame) -> pd.DataFrame:
    """Mean daily IC and RankIC of each month (rows: YYYY-MM) and the days behind them."""
    clean = scored.dropna(subset=["pred", "label"])
    ic = daily_ic(clean, "pred", "label", method="pearson")
    rank_ic = daily_ic(clean, "pred", "label", method="spearman")
    frame = pd.DataFrame({"ic": ic, "rank_ic": rank_ic})
    frame.index = pd.PeriodIndex(pd.to_datetime(frame.index), freq="M")
    out = frame.groupby(level=0).agg(ic=("ic", "mean"), rank_ic=("rank_ic", "mean"),
                                     days=("rank_ic", "size"))  # fmt: skip
    out.index = out.index.astype(str)
    return out


def quantile_returns(
    scored: pd.DataFrame, groups: int = QUANTILES, ret_col: str = "trade_ret"
) -> pd.DataFrame:
    """Daily mean traded return of each score quantile (columns q1 = worst .. q<groups> = best)
    and `spread` = best minus worst. A day with fewer symbols than groups is left out."""
    clean = scored.dropna(subset=["pred", ret_col])
    counts = clean.groupby("trade_date")["pred"].transform("size")
    clean = clean[counts >= groups]
    rank = clean.groupby("trade_date")["pred"].rank(method="first").to_numpy(dtype=np.int64)
    n = counts[counts >= groups].to_numpy(dtype=np.int64)
    bucket = (rank - 1) * groups // n + 1  # integers: no float edge at the group boundaries
    table = clean.groupby(["trade_date", bucket])[ret_col].mean().unstack()
    table = table.reindex(columns=range(1, groups + 1))
    table.columns = [f"q{c}" for c in table.columns]
    table["spread"] = table[f"q{groups}"] - table["q1"]
    return table


def write_tear_sheet(
    scored: pd.DataFrame,
    result: BacktestResult,
    strategy: BacktestConfig,
    title: str,
    out_dir: Path,
) -> TearSheet:
    """Write `tearsheet.html` and the PNGs into `out_dir`."""
    import matplotlib

    matplotlib.use("Agg")
    # quantstats asks for Arial, which a server seldom has: one warning per figure otherwise.
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    import matplotlib.pyplot as plt
    import quantstats as qs

    from ml.evaluation.plots import equity_figure

    out_dir.mkdir(parents=True, exist_ok=True)
    returns = result.returns
    index = pd.DatetimeIndex(pd.to_datetime(returns.index))
    book = pd.Series(returns["book"].to_numpy(), index=index, name="Strategy").fillna(0.0)
    bench = pd.Series(returns["benchmark"].to_numpy(), index=index, name="Equal-weight")
    report = out_dir / "tearsheet.html"
    with warnings.catch_warnings():  # seaborn's deprecation notes about matplotlib
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        qs.reports.html(book, benchmark=bench.fillna(0.0), output=str(report), title=title,  # type: ignore[no-untyped-call]
                        download_filename=report.name)  # fmt: skip

    by_month = monthly_ic(scored)
    quantiles = quantile_returns(scored)
    figures = {
        "equity": equity_figure(returns, f"{title}: growth of 1"),
        "quantiles": _quantile_figure(quantiles, f"{title}: score quintiles, cumulative"),
        "monthly_ic": _monthly_ic_figure(by_month, f"{title}: IC and RankIC by month"),
    }
    paths, images = {}, {}
    for name, fig in figures.items():
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100)
        plt.close(fig)
        paths[name] = out_dir / f"{name}.png"
        paths[name].write_bytes(buffer.getvalue())
        images[name] = base64.b64encode(buffer.getvalue()).decode("ascii")

    section = _section(result.stats, strategy, by_month, quantiles, images)
    text = report.read_text(encoding="utf-8")
    at = text.rfind("</body>")
    report.write_text(text[:at] + section + text[at:] if at >= 0 else text + section,
                      encoding="utf-8")  # fmt: skip
    return TearSheet(report, paths, by_month, quantiles)


def _fmt(value: Any, pct: bool) -> str:
    if value is None or not np.isfinite(value):
        return "–"
    return f"{value:.2%}" if pct else f"{value:.3f}"


def _section(
    stats: dict[str, float],
    strategy: BacktestConfig,
    by_month: pd.DataFrame,
    quantiles: pd.DataFrame,
    images: dict[str, str],
) -> str:
    rows = []
    for label, net, gross in COST_ROWS:
        if net not in stats and gross not in stats:
            continue
        pct = "ratio" not in label.lower() and "sharpe" not in label.lower()
        rows.append(f"<tr><td>{html.escape(label)}</td><td>{_fmt(stats.get(net), pct)}</td>"
                    f"<td>{_fmt(stats.get(gross), pct)}</td></tr>")  # fmt: skip
    rows.append(f"<tr><td>Turnover (a day)</td><td>{_fmt(stats.get('turnover'), True)}</td>"
                "<td></td></tr>")  # fmt: skip
    rows.append(f"<tr><td>Cost drag (a year)</td><td>{_fmt(stats.get('cost_drag'), True)}</td>"
                "<td></td></tr>")  # fmt: skip
    growth = (1 + quantiles.drop(columns="spread").fillna(0)).prod() - 1
    q_rows = "".join(
        f"<tr><td>{html.escape(str(q))}</td><td>{_fmt(v, True)}</td></tr>"
        for q, v in growth.items()
    )
    m_rows = "".join(
        f"<tr><td>{html.escape(str(m))}</td><td>{_fmt(r.ic, False)}</td>"
        f"<td>{_fmt(r.rank_ic, False)}</td><td>{int(r.days)}</td></tr>"
        for m, r in by_month.iterrows()
    )

    def img(name: str) -> str:
        return (f'<img alt="{name}" style="max-width:100%" '
                f'src="data:image/png;base64,{images[name]}">')  # fmt: skip

    return f"""
<div id="marketflow" style="max-width:960px;margin:2em auto;font-family:sans-serif">
<h2>Signal and strategy (MarketFlow)</h2>
<p>Strategy: {html.escape(strategy.describe())}. Signals of day t trade at the close of t+1.</p>
<h3>With and without costs</h3>
<table border="1" cellpadding="4" style="border-collapse:collapse">
<tr><th></th><th>after costs</th><th>before costs</th></tr>{"".join(rows)}</table>
{img("equity")}
<h3>Score quintiles (q{QUANTILES} = best), traded return cumulated</h3>
<table border="1" cellpadding="4" style="border-collapse:collapse">{q_rows}</table>
{img("quantiles")}
<h3>IC and RankIC by month</h3>
{img("monthly_ic")}
<table border="1" cellpadding="4" style="border-collapse:collapse">
<tr><th>month</th><th>IC</th><th>RankIC</th><th>days</th></tr>{m_rows}</table>
</div>
"""


def _quantile_figure(quantiles: pd.DataFrame, title: str) -> Any:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    index = pd.to_datetime(quantiles.index)
    for col in quantiles.columns:
        style = "--" if col == "spread" else "-"
        ax.plot(index, (1 + quantiles[col].fillna(0)).cumprod().to_numpy(), style, label=col)
    ax.set_yscale("log")
    ax.set_title(title)
    ax.set_ylabel("growth of 1 (before costs)")
    ax.legend(ncol=3)
    fig.tight_layout()
    return fig


def _monthly_ic_figure(by_month: pd.DataFrame, title: str) -> Any:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.5))
    x = np.arange(len(by_month))
    ax.bar(x - 0.2, by_month["ic"].to_numpy(), width=0.4, label="IC")
    ax.bar(x + 0.2, by_month["rank_ic"].to_numpy(), width=0.4, label="RankIC")
    step = max(1, len(x) // 12)
    ax.set_xticks(x[::step], list(by_month.index[::step]), rotation=45, ha="right")
    ax.axhline(0, color="black", lw=0.5)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig
