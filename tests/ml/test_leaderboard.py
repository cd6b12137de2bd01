"""ml/leaderboard.py: the models on the same folds, judged by signal and after-cost excess."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ml.config import load_config
from ml.evaluation.walk_forward import run_walk_forward
from ml.leaderboard import leaderboard
from ml.prepare import prepare
from tests.ml.conftest import TINY_CONFIG


def test_the_leaderboard_ranks_models_beside_the_benchmark_with_a_tear_sheet_each(
    market_url: str, tiny_config, tmp_path: Path
) -> None:
    models = {name: TINY_CONFIG["models"][name] for name in ("ridge", "xgboost")}
    strategy = {"strategy": "topk_dropout", "top_k": 2, "n_drop": 1, "buy_cost_bps": 5,
                "sell_cost_bps": 15, "benchmark_symbol": "AAPL"}  # fmt: skip
    config_path = tiny_config(models=models, backtest=strategy)

    board = leaderboard(market_url, config_path, out_dir=tmp_path)

    table = board.table
    assert list(table.index) == ["ridge", "xgboost", "equal_weight"]
    assert board.strategy == "TopkDropout(2, 1), 5/15 bps buy/sell, daily"
    # The same numbers as a walk-forward of that model on those folds.
    config = load_config(config_path)
    prepared = prepare(market_url, config)
    ridge = run_walk_forward("ridge", config.models["ridge"], prepared.panel, prepared.folds,
                             config.seed, prepared.min_history, config.processors,
                             config.backtest)  # fmt: skip
    for key in ("rank_ic", "ic", "excess_annual_return", "gross_excess_annual_return",
                "turnover", "cost_drag", "excess2_annual_return"):  # fmt: skip
        assert table.loc["ridge", key] == pytest.approx(ridge.metrics[key]), key
    # Costs only take away; TopkDropout(2, 1) trades at most one name each way a day.
    for name in ("ridge", "xgboost"):
        row = table.loc[name]
        assert row["excess_annual_return"] < row["gross_excess_annual_return"]
        assert 0 < row["turnover"] <= 2 * 1 / 2 and row["seconds"] > 0 and row["peak_rss_gb"] > 0
    assert table.loc["equal_weight", "annual_return"] == pytest.approx(
        ridge.metrics["benchmark_annual_return"]
    )

    written = pd.read_csv(tmp_path / "leaderboard.csv", index_col=0)
    assert list(written.index) == list(table.index)
    text = (tmp_path / "leaderboard.md").read_text()
    assert "TopkDropout(2, 1), 5/15 bps buy/sell" in text
    assert f"| ridge | {table.loc['ridge', 'ic']:.4f} |" in text
    for name in ("ridge", "xgboost"):
        assert (tmp_path / name / "tearsheet.html").stat().st_size > 10_000
        assert (tmp_path / name / "quantiles.png").is_file()


def test_a_stopped_leaderboard_keeps_the_models_it_finished(
    market_url: str, tiny_config, tmp_path: Path
) -> None:
    """A long run (the dev universe's zoo takes hours) that dies in its third model still has
    the table of the first two on disk."""
    models = {name: TINY_CONFIG["models"][name] for name in ("ridge", "xgboost", "lstm_attention")}
    config_path = tiny_config(models=models)
    n_folds = len(prepare(market_url, load_config(config_path)).folds)
    calls = []

    def die_in_the_third_model(fold: int, metrics: dict[str, float]) -> None:
        calls.append(fold)
        if len(calls) > 2 * n_folds:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        leaderboard(market_url, config_path, out_dir=tmp_path, on_fold=die_in_the_third_model)
    written = pd.read_csv(tmp_path / "leaderboard.csv", index_col=0)
    first_two = list(load_config(config_path).models)[:2]  # the config file's order
    assert list(written.index) == [*first_two, "equal_weight"]
    assert f"| {first_two[1]} |" in (tmp_path / "leaderboard.md").read_text()
