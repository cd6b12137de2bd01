"""Hyperparameter search over one model's config: grid search or Optuna TPE with pruning.

A trial is scored on the walk-forward *validation* segments (mean RankIC over the folds), never
on the test windows, so the walk-forward test metrics of the tuned config stay out of sample.
Each trial is an MLflow child run; the best kwargs are written back into a copy of the config as
YAML. The search space (YAML, under `tune:` or passed in):

    model: lstm_attention
    method: tpe            # or grid
    trials: 20             # tpe only
    space:                 # tpe: distributions
      hidden: {type: int, low: 8, high: 64, log: true}
      lr: {type: float, low: 0.0001, high: 0.01, log: true}
      layers: {type: categorical, choices: [1, 2]}
    grid:                  # grid: lists of values
      alpha: [1.0, 10.0, 100.0]
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from core.settings import Settings, get_settings
from ml.config import DEFAULT_CONFIG, ModelSpec, load_config
from ml.evaluation.metrics import rank_ic_of
from ml.evaluation.walk_forward import fold_dataset
from ml.models import as_spec, build_model
from ml.prepare import Prepared, prepare
from ml.registry.tracking import configure, ensure_experiment

log = logging.getLogger(__name__)


@dataclass
class TuneResult:
    model: str
    method: str
    best_kwargs: dict[str, Any]
    best_score: float
    trials: list[dict[str, Any]] = field(default_factory=list)
    output: Path | None = None
    run_id: str | None = None


def validation_score(
    prepared: Prepared, spec: ModelSpec | dict[str, Any], report: Any = None
) -> tuple[float, list[float]]:
    """Mean RankIC of `spec` on the folds' validation segments (fit on each fold's train)."""
    seed = prepared.config.seed
    spec = as_spec(spec)
    scores: list[float] = []
    for fold in prepared.folds:
        dataset = fold_dataset(prepared.panel, fold, prepared.min_history,
                               prepared.config.processors)  # fmt: skip
        # Early stopping must not peek at the segment the trial is scored on.
        dataset = dataset.subset({"train": dataset.rows("train"), "score": dataset.rows("valid")})
        dataset = dataset.with_label_processor(spec.label_processor)
        model = build_model(spec, seed=seed, runtime=prepared.runtime).fit(dataset)
        rows = dataset.rows("score")
        pred = model.predict_rows(dataset.X_all, rows)
        label = dataset.panel.frame[dataset.panel.label].to_numpy(dtype=float)[rows]
        scores.append(rank_ic_of(dataset.panel.dates[rows], pred, label))
        if report is not None:
            report(fold.index, float(np.mean(scores)))
    return float(np.mean(scores)), scores


def _suggest(trial: Any, name: str, dist: dict[str, Any]) -> Any:
    kind = dist.get("type", "float")
    if kind == "int":
        return trial.suggest_int(name, int(dist["low"]), int(dist["high"]),
                                 log=bool(dist.get("log", False)))  # fmt: skip
    if kind == "float":
        return trial.suggest_float(name, float(dist["low"]), float(dist["high"]),
                                   log=bool(dist.get("log", False)))  # fmt: skip
    if kind == "categorical":
        return trial.suggest_categorical(name, list(dist["choices"]))
    raise ValueError(f"unknown distribution type {kind!r} for {name}")


def tune(
    database_url: str,
    search: dict[str, Any],
    settings: Settings | None = None,
    config_path: Path | str | None = None,
    output: Path | str | None = None,
    on_trial: Any = None,
) -> TuneResult:
    """Search `search["model"]`'s kwargs; log trials as child runs; write the best config."""
    import mlflow
    import optuna

    settings = settings or get_settings()
    config = load_config(config_path or DEFAULT_CONFIG)
    name = search["model"]
    if name not in config.models:
        raise ValueError(f"model {name!r} is not in the config ({', '.join(config.models)})")
    method = search.get("method", "tpe")
    base = config.models[name]
    prepared = prepare(database_url, config.with_models({name: base}), settings)
    seed = config.seed

    configure(settings)
    ensure_experiment(settings)
    trials: list[dict[str, Any]] = []

    def run_trial(number: int, kwargs: dict[str, Any], report: Any = None) -> float:
        spec = base.model_copy(update={"kwargs": {**base.kwargs, **kwargs}})
        with mlflow.start_run(run_name=f"{name}_trial_{number}", nested=True):
            mlflow.log_params({k: str(v) for k, v in kwargs.items()})
            score, per_fold = validation_score(prepared, spec, report)
            mlflow.log_metric("valid_rank_ic", score)
            for i, s in enumerate(per_fold):
                mlflow.log_metric("valid_rank_ic_fold", s, step=i)
        trials.append({"number": number, "kwargs": kwargs, "score": score})
        if on_trial is not None:
            on_trial(number, score)
        return score

    with mlflow.start_run(run_name=f"tune_{name}_{method}") as parent:
        mlflow.log_dict(search, "tune/search.yaml")
        if method == "grid":
            grid = search.get("grid") or {}
            keys = list(grid)
            for number, values in enumerate(itertools.product(*(grid[k] for k in keys))):
                run_trial(number, dict(zip(keys, values, strict=True)))
        elif method == "tpe":
            space = search.get("space") or {}
            sampler = optuna.samplers.TPESampler(seed=seed)
            pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
            study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)

            def objective(trial: Any) -> float:
                kwargs = {k: _suggest(trial, k, d) for k, d in space.items()}

                def report(step: int, value: float) -> None:
                    trial.report(value, step)
                    if trial.should_prune():
                        raise optuna.TrialPruned()

                return run_trial(trial.number, kwargs, report)

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            study.optimize(objective, n_trials=int(search.get("trials", 10)))
            mlflow.log_metric("pruned_trials",
                              sum(t.state.name == "PRUNED" for t in study.trials))  # fmt: skip
        else:
            raise ValueError(f"unknown search method {method!r}: grid or tpe")
        if not trials:
            raise RuntimeError("no trial finished")
        best = max(trials, key=lambda t: t["score"])
        tuned_spec = as_spec({"class": base.class_, "kwargs": {**base.kwargs, **best["kwargs"]}})
        tuned = config.with_models({**config.models, name: tuned_spec}).as_dict()
        mlflow.log_dict(tuned, "tune/best_config.yaml")
        mlflow.log_metric("best_valid_rank_ic", best["score"])
        mlflow.log_params({f"best.{k}": str(v) for k, v in best["kwargs"].items()})
        out = Path(output) if output else settings.data_dir / f"tuned_{name}.yaml"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(yaml.safe_dump(tuned, sort_keys=False))
        log.info("best %s: %s (valid RankIC %.4f) -> %s", name, best["kwargs"], best["score"], out)
        return TuneResult(name, method, best["kwargs"], best["score"], trials, out,
                          parent.info.run_id)  # fmt: skip
