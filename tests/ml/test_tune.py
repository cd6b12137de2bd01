"""ml/tune.py: grid and Optuna TPE searches scored on walk-forward validation segments."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from core.settings import Settings
from ml.config import load_config
from ml.prepare import prepare
from ml.tune import tune, validation_score


def test_grid_search_logs_a_child_run_per_trial_and_writes_the_best_config(
    market_url: str, ml_settings: Settings, mlflow_client, tiny_config, tmp_path: Path
) -> None:
    config_path = tiny_config()
    out = tmp_path / "best.yaml"

    result = tune(
        market_url,
        {"model": "ridge", "method": "grid", "grid": {"alpha": [1.0, 1000.0]}},
        config_path=config_path,
        output=out,
    )

    assert [t["kwargs"] for t in result.trials] == [{"alpha": 1.0}, {"alpha": 1000.0}]
    best = max(result.trials, key=lambda t: t["score"])
    assert result.best_kwargs == best["kwargs"] and result.best_score == best["score"]
    # The score is the validation-segment RankIC, recomputable from the same folds.
    config = load_config(config_path)
    prepared = prepare(market_url, config.with_models({"ridge": config.models["ridge"]}))
    spec = {"class": "ridge", "kwargs": best["kwargs"]}
    assert validation_score(prepared, spec)[0] == pytest.approx(result.best_score)

    written = yaml.safe_load(out.read_text())
    assert written["models"]["ridge"]["kwargs"]["alpha"] == result.best_kwargs["alpha"]
    assert written["models"]["xgboost"] == config.models["xgboost"].as_dict()  # the rest untouched
    experiment = mlflow_client.get_experiment_by_name(ml_settings.mlflow.experiment)
    children = mlflow_client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{result.run_id}'"
    )
    assert sorted(c.info.run_name for c in children) == ["ridge_trial_0", "ridge_trial_1"]


def test_tpe_search_runs_its_trials_with_a_pruner(
    market_url: str, ml_settings: Settings, mlflow_client, tiny_config, tmp_path: Path
) -> None:
    search = {
        "model": "xgboost",
        "method": "tpe",
        "trials": 4,
        "space": {
            "n_estimators": {"type": "int", "low": 5, "high": 30},
            "learning_rate": {"type": "float", "low": 0.01, "high": 0.3, "log": True},
            "max_depth": {"type": "categorical", "choices": [1, 2]},
        },
    }

    result = tune(market_url, search, config_path=tiny_config(), output=tmp_path / "b.yaml")

    run = mlflow_client.get_run(result.run_id)
    pruned = run.data.metrics["pruned_trials"]
    assert len(result.trials) + pruned == 4
    for trial in result.trials:
        assert 5 <= trial["kwargs"]["n_estimators"] <= 30
        assert trial["kwargs"]["max_depth"] in (1, 2)
    assert run.data.metrics["best_valid_rank_ic"] == pytest.approx(result.best_score)
    with pytest.raises(ValueError, match="not in the config"):
        tune(market_url, {"model": "nope"}, config_path=tiny_config())
