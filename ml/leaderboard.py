"""`marketflow leaderboard`: every configured model on the same walk-forward folds, judged as a
quant would (signal quality, then the configured strategy's excess return with and without
costs), beside the equal-weight benchmark, with its time and memory; a tear sheet per model.

Nothing is logged to MLflow or registered: it is the comparison a team runs before choosing
what the training DAG should carry (hyperparameters come from the config, tuned with
`marketflow tune` on validation segments, never on these test folds).
"""

from __future__ import annotations

import logging
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ml.config import TrainingConfig, load_config
from ml.evaluation.backtest import backtest
from ml.evaluation.tearsheet import write_tear_sheet
from ml.prepare import prepare
from ml.train import OnFold, walk_forward_zoo

log = logging.getLogger(__name__)

# (column, metric key, format): what the table shows for each model.
COLUMNS = (
    ("IC", "ic", "{:.4f}"),
    ("RankIC", "rank_ic", "{:.4f}"),
    ("ICIR", "icir", "{:.3f}"),
    ("RankICIR", "rank_icir", "{:.3f}"),
    ("annual", "annual_return", "{:+.2%}"),
    ("Sharpe", "sharpe", "{:.2f}"),
    ("excess", "excess_annual_return", "{:+.2%}"),
    ("excess CI low", "excess_annual_return_ci_low", "{:+.2%}"),
    ("excess CI high", "excess_annual_return_ci_high", "{:+.2%}"),
    ("gross excess", "gross_excess_annual_return", "{:+.2%}"),
    ("IR", "excess_ir", "{:.2f}"),
    ("gross IR", "gross_excess_ir", "{:.2f}"),
    ("max DD", "max_drawdown", "{:.1%}"),
    ("excess max DD", "excess_max_drawdown", "{:.1%}"),
    ("turnover/day", "turnover", "{:.1%}"),
    ("cost drag", "cost_drag", "{:.2%}"),
    ("train s", "seconds", "{:.0f}"),
    ("peak RSS GB", "peak_rss_gb", "{:.2f}"),
)


@dataclass
class Leaderboard:
    table: pd.DataFrame  # one row per model, plus `equal_weight`
    strategy: str
    folds: str
    out_dir: Path | None

    def markdown(self) -> str:
        head = ["model", *(c for c, _, _ in COLUMNS)]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name, row in self.table.iterrows():
            cells = [str(name)]
            for _, key, fmt in COLUMNS:
                value = row.get(key)
                cells.append("" if value is None or pd.isna(value) else fmt.format(value))
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def leaderboard(
    database_url: str,
    config_path: Path | str,
    names: list[str] | None = None,
    out_dir: Path | None = None,
    on_fold: OnFold | None = None,
) -> Leaderboard:
    config = load_config(config_path)
    prepared = prepare(database_url, config)
    folds = prepared.folds
    names = names or list(config.models)
    if not names:
        raise ValueError("no model to put on the leaderboard")
    span = f"{len(folds)} folds, test {folds[0].test_start} .. {folds[-1].test_end}"
    rows: dict[str, dict[str, float]] = {}
    bench: dict[str, float] = {}
    for name in names:
        started = time.perf_counter()
        result = walk_forward_zoo(prepared, [name], track=False, on_fold=on_fold)[name]
        seconds = time.perf_counter() - started
        rows[name] = {**result.metrics, "seconds": seconds, "peak_rss_gb": _peak_rss_gb()}
        bench = {
            "annual_return": result.metrics["benchmark_annual_return"],
            "sharpe": result.metrics["benchmark_sharpe"],
            "max_drawdown": result.metrics["benchmark_max_drawdown"],
        }
        if out_dir is not None:
            scored = result.scored.dropna(subset=["pred"])
            write_tear_sheet(scored, backtest(scored, config.backtest, seed=config.seed),
                             config.backtest, name, out_dir / name)  # fmt: skip
        log.info("leaderboard %s: rank_ic=%.4f excess=%.4f in %.0f s", name,
                 result.metrics["rank_ic"], result.metrics["excess_annual_return"], seconds)  # fmt: skip
        # Written after every model: a long run that is stopped keeps what it finished.
        board = _board(rows, bench, config, span, out_dir)
    return board


def _board(
    rows: dict[str, dict[str, float]],
    bench: dict[str, float],
    config: TrainingConfig,
    span: str,
    out_dir: Path | None,
) -> Leaderboard:
    """The table of the models so far plus `equal_weight`, written under `out_dir`."""
    table = pd.DataFrame.from_dict(rows, orient="index")
    for key, value in bench.items():
        table.loc["equal_weight", key] = value
    board = Leaderboard(table, config.backtest.describe(), span, out_dir)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        table.to_csv(out_dir / "leaderboard.csv")
        header = (f"# Leaderboard\n\nStrategy: {board.strategy}. Label {config.label}; {span}. "
                  f"Equal-weight benchmark: annual return {bench.get('annual_return', float('nan')):.2%}, "
                  f"Sharpe {bench.get('sharpe', float('nan')):.2f}.\n\n")  # fmt: skip
        (out_dir / "leaderboard.md").write_text(header + board.markdown() + "\n")
    return board
