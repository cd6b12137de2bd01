"""ml/config: the training config is validated when it is read, naming the bad key's path."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ml.config import DEFAULT_CONFIG, ConfigError, TrainingConfig, load_config


@pytest.mark.parametrize("name", ["models.yaml", "full.yaml", "leaderboard.yaml"])
def test_the_shipped_configs_validate(name: str) -> None:
    config = load_config(DEFAULT_CONFIG.parent / name)

    assert isinstance(config, TrainingConfig) and config.models
    assert config.selection == "rank_ic" and config.gate.min_coverage == 0.9


def test_a_typo_in_a_key_fails_at_load_with_the_keys_path(tmp_path: Path) -> None:
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    raw["walk_forward"]["tets_days"] = raw["walk_forward"].pop("test_days")
    raw["models"]["ridge"]["kwrags"] = raw["models"]["ridge"].pop("kwargs")
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(raw))

    with pytest.raises(ConfigError) as failure:
        load_config(path)

    message = str(failure.value)
    assert message.startswith(f"{path}: ")
    assert "walk_forward.tets_days: Extra inputs are not permitted" in message
    assert "models.ridge.kwrags: Extra inputs are not permitted" in message


def test_a_bad_value_names_its_path_and_an_empty_zoo_is_refused(tmp_path: Path) -> None:
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    raw["walk_forward"]["mode"] = "sliding"
    raw["backtest"]["top_k"] = "two"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"walk_forward\.mode: .*backtest\.top_k: "):
        load_config(path)

    path.write_text(yaml.safe_dump({**raw, "models": {}}))
    with pytest.raises(ConfigError, match="models: Value error, no models configured"):
        load_config(path)


def test_a_strategy_is_validated_and_described(tmp_path: Path) -> None:
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    path = tmp_path / "strategy.yaml"
    for backtest, problem in (
        ({"strategy": "topk_dropout", "top_k": 5}, "topk_dropout needs n_drop"),
        ({"strategy": "long_short", "n_drop": 2}, "n_drop is a topk_dropout option"),
        ({"rebalance_days": 0}, r"backtest\.rebalance_days: Input should be greater than"),
        ({"sell_cost_bps": -1}, r"backtest\.sell_cost_bps: Input should be greater than"),
    ):
        path.write_text(yaml.safe_dump({**raw, "backtest": backtest}))
        with pytest.raises(ConfigError, match=problem):
            load_config(path)

    board = load_config(DEFAULT_CONFIG.parent / "leaderboard.yaml").backtest
    assert board.describe() == "TopkDropout(50, 5), 5/15 bps buy/sell, daily"
    assert (board.buy_bps, board.sell_bps, board.kind) == (5, 15, "topk_dropout")
    stressed = board.scaled_costs(2)
    assert (stressed.buy_bps, stressed.sell_bps, stressed.top_k) == (10, 30, 50)


def test_a_model_spec_keeps_the_yaml_shape() -> None:
    config = load_config()
    spec = config.models["lstm_attention"]

    assert spec.as_dict() == yaml.safe_load(DEFAULT_CONFIG.read_text())["models"]["lstm_attention"]
    assert config.as_dict()["models"]["ridge"] == {"class": "ridge", "kwargs": {"alpha": 10.0}}


def test_an_unknown_processor_is_refused_at_load(tmp_path: Path) -> None:
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    raw["processors"] = ["robust_zscore", {"filna": {"value": 0}}]
    path = tmp_path / "processors.yaml"
    path.write_text(yaml.safe_dump(raw))

    with pytest.raises(ConfigError, match=r"processors: Value error, unknown processor 'filna'"):
        load_config(path)
