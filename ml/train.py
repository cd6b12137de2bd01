"""Train the model zoo walk-forward, log everything to MLflow, register the best, gate promotion.

1. Read the panel (discovered features, label, universe) and cut walk-forward folds (ml.prepare).
2. Leakage guard on the training rows: an implausibly predictive feature stops the run.
3. Every configured model is fitted and scored on every fold (a nested MLflow run per model, and
   one per fold under it); metrics are those of the pooled out-of-sample predictions, with the
   backtest and the stress tests beside the equal-weight benchmark.
4. The best model on the selection metric (walk-forward RankIC by default) that passes the sanity
   checks is refitted on the most recent data and registered with its champion card
   (ml.registry.register).
5. Gate (ml.registry.gate): the challenger takes `@champion` only if its walk-forward metric
   beats the champion's on the same folds.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from core.settings import Settings, get_settings
from ml.config import DEFAULT_CONFIG, ModelSpec, load_config
from ml.evaluation.backtest import backtest, stress_tests, summarize
from ml.evaluation.leakage import check_leakage
from ml.evaluation.walk_forward import WalkForwardResult, run_walk_forward
from ml.models import build_model
from ml.prepare import Prepared, final_dataset, inputs_fingerprint, prepare
from ml.registry.card import model_card_markdown, read_card, tear_sheet_dir
from ml.registry.gate import gate, promote, select_challenger
from ml.registry.register import register_challenger
from ml.registry.tracking import configure, ensure_experiment

log = logging.getLogger(__name__)

OnFold = Callable[[int, dict[str, float]], None]


@dataclass
class TrainResult:
    run_id: str
    model_name: str
    version: str
    best_model: str
    metrics: dict[str, float]
    promoted: bool
    champion_version: str
    reason: str
    candidates: dict[str, dict[str, float]] = field(default_factory=dict)
    # Nothing trained or registered: the data and config are those of `version` already.
    skipped: bool = False


def _loggable(metrics: dict[str, float]) -> dict[str, float]:
    return {
        k: float(v) for k, v in metrics.items() if isinstance(v, float | int) and math.isfinite(v)
    }


def _log_history(model: object) -> None:
    """The refit's training curve, one MLflow step per entry of the model's `history` (the
    networks' epochs; the RL agents' validation rounds with what SB3's logger last reported),
    as metrics `refit/<key>`."""
    import mlflow

    for step, entry in enumerate(getattr(model, "history", None) or []):
        values = {"refit/" + re.sub(r"[^0-9A-Za-z_\-./ ]", "_", str(k)): v
                  for k, v in _loggable(entry).items()}  # fmt: skip
        if values:
            mlflow.log_metrics(values, step=step)


def _flat_params(spec: ModelSpec) -> dict[str, str]:
    out = {"class": spec.class_}
    for key, value in spec.kwargs.items():
        text = json.dumps(value) if isinstance(value, dict | list) else str(value)
        out[key] = text[:500]
    return out


def walk_forward_zoo(
    prepared: Prepared,
    names: list[str] | None = None,
    track: bool = True,
    on_fold: OnFold | None = None,
    checkpoint_root: Path | None = None,
) -> dict[str, WalkForwardResult]:
    """Walk-forward every configured model (or `names`), each a nested MLflow run if tracked."""
    import mlflow

    config = prepared.config
    results: dict[str, WalkForwardResult] = {}
    for name in names or list(config.models):
        spec = config.models[name]

        def run(track: bool, spec: ModelSpec = spec, name: str = name) -> WalkForwardResult:
            return run_walk_forward(
                name, spec, prepared.panel, prepared.folds, config.seed, prepared.min_history,
                config.processors, config.backtest, track=track, on_fold=on_fold,
                checkpoint_root=checkpoint_root, runtime=prepared.runtime,
            )  # fmt: skip

        if track:
            with mlflow.start_run(run_name=name, nested=True):
                mlflow.log_params(_flat_params(spec))
                result = run(True)
                mlflow.log_metrics(_loggable(result.metrics))
        else:
            result = run(False)
        results[name] = result
        log.info("%s: %s", name, _fmt(result.metrics))
    return results


def guard_leakage(prepared: Prepared) -> None:
    """The leakage guard over every row any fold trains on."""
    panel, folds = prepared.panel, prepared.folds
    rows = panel.samples(folds[0].train_start, folds[-1].train_end, prepared.min_history,
                         folds[-1].valid_start)  # fmt: skip
    check_leakage(panel, rows, prepared.config.max_abs_feature_corr)


def _log_run_inputs(prepared: Prepared) -> None:
    import mlflow

    panel, folds, config = prepared.panel, prepared.folds, prepared.config
    mlflow.log_params(
        {
            "label": panel.label,
            "label_horizon": panel.horizon,
            "n_features": len(panel.features),
            "n_folds": len(folds),
            "walk_forward_mode": config.walk_forward.mode,
            "test_start": str(folds[0].test_start),
            "test_end": str(folds[-1].test_end),
            "seed": config.seed,
            "folds_fingerprint": prepared.fingerprint,
        }
    )
    mlflow.log_dict(config.as_dict(), "config/models.yaml")
    # Every fold's windows, once: each candidate's `fold/<metric>` step k is fold k here.
    mlflow.log_dict({"folds": [fold.as_params() for fold in folds]}, "walk_forward/folds.json")
    mlflow.log_text(",".join(panel.features), "config/features.txt")


def _log_evaluation(prepared: Prepared, best: str, chosen: WalkForwardResult) -> None:
    """The chosen model's stress tests and plots, on the training run."""
    import mlflow

    from ml.evaluation.plots import drawdown_figure, equity_figure, ic_figure, importance_figure

    seed, bt = prepared.config.seed, prepared.config.backtest
    stress = stress_tests(chosen.scored, bt, seed=seed)
    mlflow.log_metrics(_loggable({**chosen.metrics, **summarize(stress)}))
    mlflow.log_dict(stress, "walk_forward/stress_tests.json")
    mlflow.set_tag("best_model", best)

    scored = chosen.scored.dropna(subset=["pred"])
    returns = backtest(scored, bt, seed=seed).returns
    _log_figure(equity_figure(returns, f"{best}: walk-forward equity vs equal-weight"),
                "plots/equity_curve.png")  # fmt: skip
    _log_figure(drawdown_figure(returns, f"{best}: drawdown"), "plots/drawdown.png")
    _log_figure(ic_figure(chosen.scored, f"{best}: daily RankIC (out of sample)"), "plots/ic.png")
    if chosen.importance:
        _log_figure(importance_figure(chosen.importance, f"{best}: feature importance"),
                    "plots/feature_importance.png")  # fmt: skip


def log_tear_sheets(prepared: Prepared, results: Mapping[str, WalkForwardResult]) -> None:
    """Each candidate's tear sheet (HTML and PNGs) at `tearsheets/<name>/` of the run."""
    import tempfile

    import mlflow

    from ml.evaluation.tearsheet import write_tear_sheet

    seed, bt = prepared.config.seed, prepared.config.backtest
    for name, result in results.items():
        scored = result.scored.dropna(subset=["pred"])
        if scored.empty:
            continue
        backtested = backtest(scored, bt, seed=seed)
        with tempfile.TemporaryDirectory(prefix="mf_tearsheet_") as tmp:
            write_tear_sheet(scored, backtested, bt, name, Path(tmp))
            mlflow.log_artifacts(tmp, tear_sheet_dir(name))


def train(
    database_url: str,
    settings: Settings | None = None,
    config_path: Path | str = DEFAULT_CONFIG,
    on_fold: OnFold | None = None,
    force: bool = False,
) -> TrainResult:
    """Walk the zoo forward, register the best as @challenger, let the gate decide @champion.

    A training whose inputs (config, folds, every panel value: `inputs_fingerprint`) equal
    those of a registered version registers nothing (a weekly run on unchanged data would add
    an identical version each time): it logs a `train_skipped` run saying which version it
    matches and returns with `skipped`. `force` trains anyway."""
    import mlflow

    settings = settings or get_settings()
    prepared = prepare(database_url, load_config(config_path), settings)
    begun = begin_training(prepared, settings, force=force)
    if isinstance(begun, TrainResult):
        return begun
    with mlflow.start_run(run_id=begun.run_id):
        # Per-epoch checkpoints keyed by the folds: a killed run resumes each fold's fit.
        checkpoints = settings.data_dir / "checkpoints" / prepared.fingerprint
        results = walk_forward_zoo(prepared, on_fold=on_fold, checkpoint_root=checkpoints)
    return conclude_training(prepared, begun, results, database_url, settings)


@dataclass(frozen=True)
class Begun:
    """A training under way: its parent MLflow run and what it was started on."""

    run_id: str
    inputs: str
    fingerprint: str
    models: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "inputs": self.inputs, "fingerprint": self.fingerprint,
                "models": list(self.models)}  # fmt: skip


def begin_training(
    prepared: Prepared, settings: Settings, *, force: bool = False
) -> Begun | TrainResult:
    """The leakage guard, then the parent run (inputs logged), unless a registered version has
    these very inputs: then the skipped TrainResult."""
    import mlflow

    guard_leakage(prepared)
    folds = prepared.folds
    client = configure(settings)
    ensure_experiment(settings)
    model_name = settings.mlflow.model_name
    test_window = (folds[0].test_start, folds[-1].test_end)
    inputs = inputs_fingerprint(prepared)
    same = None if force else version_with_inputs(client, model_name, inputs)
    if same is not None:
        return _skipped(client, model_name, same, inputs, test_window)
    with mlflow.start_run(run_name=f"train_{test_window[1]}") as parent:
        mlflow.set_tag(INPUTS_TAG, inputs)
        _log_run_inputs(prepared)
    return Begun(parent.info.run_id, inputs, prepared.fingerprint, list(prepared.config.models))


def walk_forward_one(
    prepared: Prepared, begun: Begun, name: str, out_dir: Path, settings: Settings
) -> Path:
    """One candidate's walk-forward as a nested run of the training `begun` (a mapped task of
    the training DAG), its result kept under `out_dir/<name>` for `load_walk_forward`."""
    import mlflow

    _same_inputs(prepared, begun)
    checkpoints = settings.data_dir / "checkpoints" / prepared.fingerprint
    with mlflow.start_run(run_id=begun.run_id):
        [result] = walk_forward_zoo(prepared, [name], checkpoint_root=checkpoints).values()
    return save_walk_forward(result, out_dir / name)


def save_walk_forward(result: WalkForwardResult, folder: Path) -> Path:
    """A WalkForwardResult as files (Parquet of the scored rows, JSON of the rest): data only,
    nothing that executes when read."""
    folder.mkdir(parents=True, exist_ok=True)
    result.scored.to_parquet(folder / "scored.parquet", index=False)
    meta = {"name": result.name, "fold_metrics": result.fold_metrics, "metrics": result.metrics,
            "importance": result.importance, "eligible_rows": result.eligible_rows}  # fmt: skip
    (folder / "result.json").write_text(json.dumps(meta, default=float))
    return folder


def load_walk_forward(folder: Path) -> WalkForwardResult:
    meta = json.loads((folder / "result.json").read_text())
    return WalkForwardResult(
        meta["name"],
        pd.read_parquet(folder / "scored.parquet"),
        meta["fold_metrics"],
        metrics=meta["metrics"],
        importance=meta["importance"],
        eligible_rows=int(meta["eligible_rows"]),
    )


def _same_inputs(prepared: Prepared, begun: Begun) -> None:
    """The data must not have changed between a training's tasks: identical folds only."""
    if prepared.fingerprint != begun.fingerprint:
        raise RuntimeError(
            f"the folds changed since this training began ({begun.fingerprint} -> "
            f"{prepared.fingerprint}): new data arrived mid-training; the next run retrains"
        )


def finish_training(
    prepared: Prepared,
    begun: Begun,
    out_dir: Path,
    database_url: str,
    settings: Settings,
) -> TrainResult:
    """Gather the candidates' walk-forwards written by `walk_forward_one`, then select,
    register and gate as `train` does."""
    _same_inputs(prepared, begun)
    missing = [n for n in begun.models if not (out_dir / n / "result.json").exists()]
    if missing:
        raise RuntimeError(f"no walk-forward result for {missing} under {out_dir}")
    results = {name: load_walk_forward(out_dir / name) for name in begun.models}
    return conclude_training(prepared, begun, results, database_url, settings)


def conclude_training(
    prepared: Prepared,
    begun: Begun,
    results: dict[str, WalkForwardResult],
    database_url: str,
    settings: Settings,
) -> TrainResult:
    """After the walk-forwards: pick the challenger, log its evaluation and every tear sheet,
    refit and register it, gate it, write its model card; in the training's parent run."""
    import mlflow

    config, folds = prepared.config, prepared.folds
    metric, min_coverage = config.gate.metric, config.gate.min_coverage
    client = configure(settings)
    model_name = settings.mlflow.model_name
    test_window = (folds[0].test_start, folds[-1].test_end)
    inputs = begun.inputs
    with mlflow.start_run(run_id=begun.run_id) as parent:
        candidates = {name: r.metrics for name, r in results.items()}
        mlflow.log_text(pd.DataFrame(candidates).T.to_csv(), "walk_forward/summary.csv")

        best = select_challenger(results, config.selection, min_coverage)
        chosen = results[best]
        _log_evaluation(prepared, best, chosen)
        log_tear_sheets(prepared, results)

        # The registered model: the winner refitted on the most recent data.
        spec = config.models[best]
        final = final_dataset(prepared).with_label_processor(spec.label_processor)
        model = build_model(spec, seed=config.seed, runtime=prepared.runtime).fit(final)
        _log_history(model)
        registered = register_challenger(
            client, model_name, best=best, spec=spec, model=model, final=final,
            test_window=test_window, fingerprint=prepared.fingerprint, gate_metric=metric,
            metrics=chosen.metrics,
        )  # fmt: skip
        version = registered.version
        client.set_model_version_tag(model_name, version, INPUTS_TAG, inputs)

        decision = gate(client, settings, prepared, chosen, metric, min_coverage)
        champ = decision.champion_version
        if decision.promoted:
            promote(client, model_name, version, database_url)
            champ = version
        if not client.get_registered_model(model_name).description:
            client.update_registered_model(model_name, description=REGISTERED_MODEL_DESCRIPTION)
        card = read_card(client, client.get_model_version(model_name, version))
        client.update_model_version(model_name, version, description=model_card_markdown(
            card, n_folds=len(folds), gate_reason=decision.reason, promoted=decision.promoted,
            run_id=parent.info.run_id,
        ))  # fmt: skip
        mlflow.set_tags({"promoted": str(decision.promoted), "gate_reason": decision.reason})
        mlflow.log_dict({"promoted": decision.promoted, "reason": decision.reason,
                         "metric": metric, "challenger_version": version,
                         "champion_version": champ}, "gate/decision.json")  # fmt: skip
        log.info("gate: %s", decision.reason)
        return TrainResult(
            run_id=parent.info.run_id,
            model_name=model_name,
            version=version,
            best_model=best,
            metrics=chosen.metrics,
            promoted=decision.promoted,
            champion_version=champ,
            reason=decision.reason,
            candidates=candidates,
        )


INPUTS_TAG = "inputs"
REGISTERED_MODEL_DESCRIPTION = (
    "MarketFlow's daily trading signal: a score per symbol and day from `marts.features_daily`, "
    "higher meaning a better expected return over the label's horizon. `@champion` is the "
    "version the signals API and batch scoring serve; `@challenger` the latest candidate. Each "
    "version's description is its model card (data window, folds, metrics, the gate's verdict)."
)


def version_with_inputs(client: Any, model_name: str, inputs: str) -> Any | None:
    """The newest registered version trained on exactly these inputs, if any."""
    from mlflow.exceptions import MlflowException

    try:
        versions = client.search_model_versions(f"name = '{model_name}'")
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    matching = [v for v in versions if (v.tags or {}).get(INPUTS_TAG) == inputs]
    return max(matching, key=lambda v: int(v.version), default=None)


def _skipped(
    client: Any, model_name: str, same: Any, inputs: str, test_window: tuple[Any, Any]
) -> TrainResult:
    import mlflow

    from ml.registry.card import champion_version

    champion = champion_version(client, model_name)
    reason = (
        f"data and config unchanged since v{same.version} (inputs {inputs}): nothing trained "
        "or registered (force to retrain)"
    )
    with mlflow.start_run(run_name=f"train_skipped_{test_window[1]}") as run:
        mlflow.set_tags({INPUTS_TAG: inputs, "skipped": "true", "gate_reason": reason,
                         "same_as_version": str(same.version)})  # fmt: skip
    log.info("training skipped: %s", reason)
    return TrainResult(
        run_id=run.info.run_id,
        model_name=model_name,
        version=str(same.version),
        best_model=(same.tags or {}).get("model", ""),
        metrics={},
        promoted=False,
        champion_version=str(champion.version) if champion is not None else "",
        reason=reason,
        skipped=True,
    )


def _log_figure(fig: Any, path: str) -> None:
    """Log a figure and close it: pyplot keeps every open figure alive otherwise."""
    import matplotlib.pyplot as plt
    import mlflow

    mlflow.log_figure(fig, path)
    plt.close(fig)


def _fmt(metrics: dict[str, float]) -> str:
    keys = ("rank_ic", "ic", "icir", "directional_accuracy", "sharpe", "benchmark_sharpe")
    return ", ".join(f"{k}={metrics.get(k, float('nan')):.4f}" for k in keys)
