"""Train the model zoo walk-forward, log everything to MLflow, register the best, gate promotion.

1. Read the panel (discovered features, label, universe) and cut walk-forward folds.
2. Leakage guard on the training rows: an implausibly predictive feature stops the run.
3. Every configured model is fitted and scored on every fold (a nested MLflow run per model, and
   one per fold under it); metrics are those of the pooled out-of-sample predictions, with the
   backtest and the stress tests beside the equal-weight benchmark.
4. The best model on the selection metric (walk-forward RankIC by default) that passes the sanity
   checks is refitted on the most recent data and registered with its processors, signature,
   input example, config, pip requirements and tags (ml.inference reads them).
5. Gate: the challenger takes `@champion` only if its walk-forward metric beats the champion's on
   the same folds (the champion's config is re-run on these folds when it was scored on others).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from marketflow.settings import Settings, get_settings
from ml.backtest import stress_tests, summarize
from ml.dataset import (
    DEFAULT_LABEL,
    Dataset,
    Panel,
    label_horizon,
    load_panel,
    make_dataset,
    read_sql,
)
from ml.leakage import DEFAULT_MAX_ABS_CORR, check_leakage
from ml.models import build_model, model_lookback
from ml.tracking import CHALLENGER, CHAMPION, champion_version, configure, ensure_experiment
from ml.walk_forward import (
    Fold,
    WalkForwardConfig,
    WalkForwardResult,
    folds_fingerprint,
    make_folds,
    run_walk_forward,
)

log = logging.getLogger(__name__)

DEFAULT_CONFIG = Path(__file__).parent / "config" / "models.yaml"
DEFAULT_GATE_METRIC = "rank_ic"
TAG_METRICS = ("ic", "rank_ic", "icir", "rank_icir", "ic_tstat", "directional_accuracy", "mae",
               "rmse", "mape", "sharpe", "sharpe_ci_low", "sharpe_ci_high", "sortino",
               "annual_return", "volatility", "max_drawdown", "calmar", "turnover",
               "ls_sharpe", "ls_annual_return", "benchmark_sharpe", "benchmark_annual_return",
               "benchmark_max_drawdown", "coverage")  # fmt: skip


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


@dataclass
class Prepared:
    config: dict[str, Any]
    panel: Panel
    folds: list[Fold]
    min_history: int
    fingerprint: str


def load_config(path: Path | str = DEFAULT_CONFIG) -> dict[str, Any]:
    config = yaml.safe_load(Path(path).read_text())
    if not config.get("models"):
        raise ValueError(f"{path}: no models configured")
    return config


def _label_columns(database_url: str) -> set[str]:
    frame = read_sql(
        database_url,
        "select column_name from information_schema.columns"
        " where table_schema = 'marts' and table_name = 'labels_daily'",
    )
    return set(frame["column_name"])


def has_labelled_features(database_url: str) -> bool:
    """Whether the marts exist and hold rows: a weekly tick before the first features build
    has nothing to train on and is skipped, not failed."""
    frame = read_sql(
        database_url,
        "select to_regclass('marts.features_daily') is not null"
        " and to_regclass('marts.labels_daily') is not null as built",
    )
    if not bool(frame["built"].iloc[0]):
        return False
    frame = read_sql(database_url, "select exists (select 1 from marts.labels_daily) as rows")
    return bool(frame["rows"].iloc[0])


def prepare(database_url: str, config: dict[str, Any]) -> Prepared:
    """Panel, folds and the history every model needs, from the marts and the config."""
    label = config.get("label", DEFAULT_LABEL)
    available = _label_columns(database_url)
    if label not in available:
        raise ValueError(f"label {label!r} is not a column of marts.labels_daily")
    # Besides the label: the LSTM's auxiliary head (fwd_ret_1d) and the RL trader's reward
    # (trade_ret_1d). Neither is a feature; the walk-forward purges by the label's horizon.
    extra = ("fwd_ret_1d", "trade_ret_1d")
    labels = [label] + [c for c in extra if c in available and c != label]
    frame, features = load_panel(database_url, config.get("features"), labels)
    horizon = label_horizon(label, database_url)
    panel = Panel(frame, features, label, horizon)
    min_history = max(model_lookback(spec) for spec in config["models"].values())
    folds = make_folds(
        panel.calendar, horizon, WalkForwardConfig.from_dict(config.get("walk_forward"))
    )
    return Prepared(config, panel, folds, min_history, folds_fingerprint(folds, label))


def final_dataset(prepared: Prepared) -> Dataset:
    """The registered model's data: everything up to the last labelled day; the most recent
    `final_valid_days` dates (after a purge gap) for early stopping."""
    panel, cal = prepared.panel, prepared.panel.calendar
    valid_days = int(prepared.config.get("final_valid_days", 126))
    gap = panel.horizon
    valid_start = len(cal) - valid_days
    train_end = valid_start - gap - 1
    if train_end < 20:
        raise ValueError("too few dates to refit the final model")
    mh = prepared.min_history
    segments = {
        "train": panel.samples(cal[0], cal[train_end], mh, cal[valid_start]),
        "valid": panel.samples(cal[valid_start], cal[-1], mh, None),
    }
    return make_dataset(panel, segments, prepared.config.get("processors"))


def sanity_failures(result: WalkForwardResult, min_coverage: float) -> list[str]:
    """Why a model's out-of-sample scores cannot be trusted (empty when they can)."""
    pred = result.scored["pred"].to_numpy(dtype=float)
    failures = []
    if not np.isfinite(pred).all():
        failures.append(f"{int((~np.isfinite(pred)).sum())} non-finite scores")
    finite = pred[np.isfinite(pred)]
    if len(finite) == 0 or float(np.std(finite)) < 1e-12:
        failures.append("scores are constant")
    else:
        per_day = result.scored.groupby("trade_date")["pred"].nunique()
        if float((per_day > 1).mean()) < 0.5:
            failures.append("scores do not separate symbols on most days")
    if result.coverage < min_coverage:
        failures.append(f"coverage {result.coverage:.1%} < {min_coverage:.0%}")
    return failures


def _pip_requirements() -> list[str]:
    wanted = ["mlflow", "numpy", "pandas", "scikit-learn", "cloudpickle", "torch"]
    wanted.append("xgboost-cpu" if _installed("xgboost-cpu") else "xgboost")
    return [f"{name}=={metadata.version(name)}" for name in wanted if _installed(name)]


def _installed(name: str) -> bool:
    try:
        metadata.version(name)
        return True
    except metadata.PackageNotFoundError:
        return False


def _finite(x: float) -> float:
    return x if isinstance(x, float | int) and math.isfinite(x) else float("-inf")


def _loggable(metrics: dict[str, float]) -> dict[str, float]:
    return {
        k: float(v) for k, v in metrics.items() if isinstance(v, float | int) and math.isfinite(v)
    }


def _flat_params(spec: dict[str, Any]) -> dict[str, str]:
    kwargs = spec.get("kwargs") or {}
    out = {"class": str(spec["class"])}
    for key, value in kwargs.items():
        text = json.dumps(value) if isinstance(value, dict | list) else str(value)
        out[key] = text[:500]
    return out


def walk_forward_zoo(
    prepared: Prepared,
    names: list[str] | None = None,
    track: bool = True,
    on_fold: Any = None,
    checkpoint_root: Path | None = None,
) -> dict[str, WalkForwardResult]:
    """Walk-forward every configured model (or `names`), each a nested MLflow run if tracked."""
    import mlflow

    config = prepared.config
    seed = int(config.get("seed", 0))
    bt = config.get("backtest") or {}
    results: dict[str, WalkForwardResult] = {}
    for name in names or list(config["models"]):
        spec = config["models"][name]
        if track:
            with mlflow.start_run(run_name=name, nested=True):
                mlflow.log_params(_flat_params(spec))
                result = run_walk_forward(
                    name, spec, prepared.panel, prepared.folds, seed, prepared.min_history,
                    config.get("processors"), bt, track=True, on_fold=on_fold,
                    checkpoint_root=checkpoint_root,
                )  # fmt: skip
                mlflow.log_metrics(_loggable(result.metrics))
        else:
            result = run_walk_forward(
                name, spec, prepared.panel, prepared.folds, seed, prepared.min_history,
                config.get("processors"), bt, track=False, on_fold=on_fold,
                checkpoint_root=checkpoint_root,
            )  # fmt: skip
        results[name] = result
        log.info("%s: %s", name, _fmt(result.metrics))
    return results


def train(
    database_url: str,
    settings: Settings | None = None,
    config_path: Path | str = DEFAULT_CONFIG,
    on_fold: Any = None,
) -> TrainResult:
    import mlflow
    from mlflow.models import infer_signature

    from ml.plots import drawdown_figure, equity_figure, ic_figure, importance_figure
    from ml.pyfunc import SignalModel

    settings = settings or get_settings()
    config = load_config(config_path)
    prepared = prepare(database_url, config)
    panel, folds = prepared.panel, prepared.folds
    gate_cfg = config.get("gate") or {}
    metric = str(gate_cfg.get("metric", DEFAULT_GATE_METRIC))
    min_coverage = float(gate_cfg.get("min_coverage", 0.9))
    seed = int(config.get("seed", 0))
    bt = config.get("backtest") or {}

    # The guard looks at every row any fold trains on.
    last_train = panel.samples(folds[0].train_start, folds[-1].train_end, prepared.min_history,
                               folds[-1].valid_start)  # fmt: skip
    check_leakage(
        panel, last_train, float(config.get("max_abs_feature_corr", DEFAULT_MAX_ABS_CORR))
    )

    client = configure(settings)
    ensure_experiment(settings)
    test_start, test_end = folds[0].test_start, folds[-1].test_end
    with mlflow.start_run(run_name=f"train_{test_end}") as parent:
        mlflow.log_params(
            {
                "label": panel.label,
                "label_horizon": panel.horizon,
                "n_features": len(panel.features),
                "n_folds": len(folds),
                "walk_forward_mode": (config.get("walk_forward") or {}).get("mode", "expanding"),
                "test_start": str(test_start),
                "test_end": str(test_end),
                "seed": seed,
                "folds_fingerprint": prepared.fingerprint,
            }
        )
        mlflow.log_dict(config, "config/models.yaml")
        mlflow.log_text(",".join(panel.features), "config/features.txt")
        # Per-epoch checkpoints keyed by the folds: a killed run resumes each fold's fit.
        checkpoints = settings.data_dir / "checkpoints" / prepared.fingerprint
        results = walk_forward_zoo(prepared, on_fold=on_fold, checkpoint_root=checkpoints)
        candidates = {name: r.metrics for name, r in results.items()}
        table = pd.DataFrame(candidates).T
        mlflow.log_text(table.to_csv(), "walk_forward/summary.csv")

        sane = {n: r for n, r in results.items() if not sanity_failures(r, min_coverage)}
        if not sane:
            raise RuntimeError(
                "no model passed the sanity checks: "
                + "; ".join(f"{n}: {sanity_failures(r, min_coverage)}" for n, r in results.items())
            )
        selection = str(config.get("selection_metric", metric))
        best = max(sane, key=lambda n: _finite(sane[n].metrics[selection]))
        chosen = results[best]
        metrics = chosen.metrics
        stress = stress_tests(chosen.scored, seed=seed, **bt)
        mlflow.log_metrics(_loggable({**metrics, **summarize(stress)}))
        mlflow.log_dict(stress, "walk_forward/stress_tests.json")
        mlflow.set_tag("best_model", best)

        from ml.backtest import backtest

        returns = backtest(chosen.scored.dropna(subset=["pred"]), seed=seed, **bt).returns
        _log_figure(equity_figure(returns, f"{best}: walk-forward equity vs equal-weight"),
                          "plots/equity_curve.png")  # fmt: skip
        _log_figure(drawdown_figure(returns, f"{best}: drawdown"), "plots/drawdown.png")
        _log_figure(ic_figure(chosen.scored, f"{best}: daily RankIC (out of sample)"),
                          "plots/ic.png")  # fmt: skip
        if chosen.importance:
            _log_figure(importance_figure(chosen.importance, f"{best}: feature importance"),
                              "plots/feature_importance.png")  # fmt: skip

        # The registered model: the winner refitted on the most recent data.
        spec = config["models"][best]
        final = final_dataset(prepared)
        model = build_model(spec, seed=seed).fit(final)
        python_model = SignalModel(model, panel.features, panel.label, final.processors)
        example = _input_example(panel, python_model.lookback)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=python_model,
            signature=infer_signature(example, python_model.predict(None, example)),
            input_example=example,
            pip_requirements=_pip_requirements(),
            registered_model_name=settings.model_name,
        )
        version = str(info.registered_model_version)
        train_start, train_end = final.window("train")
        tags = {
            "model": best,
            "label": panel.label,
            "label_horizon": str(panel.horizon),
            "lookback": str(python_model.lookback),
            "features": ",".join(panel.features),
            "train_start": str(train_start),
            "train_end": str(train_end),
            "test_start": str(test_start),
            "test_end": str(test_end),
            "folds": prepared.fingerprint,
            "gate_metric": metric,
            "model_spec": json.dumps(spec),
            **{f"metric.{k}": f"{metrics[k]:.6g}" for k in TAG_METRICS if k in metrics},
        }
        for key, value in tags.items():
            client.set_model_version_tag(settings.model_name, version, key, value)
        mlflow.log_params({"train_start": str(train_start), "train_end": str(train_end)})
        client.set_registered_model_alias(settings.model_name, CHALLENGER, version)

        promoted, reason, champ = gate(client, settings, prepared, chosen, metric, min_coverage)
        if promoted:
            client.set_registered_model_alias(settings.model_name, CHAMPION, version)
            champ = version
        mlflow.set_tags({"promoted": str(promoted), "gate_reason": reason})
        mlflow.log_dict({"promoted": promoted, "reason": reason, "metric": metric,
                         "challenger_version": version, "champion_version": champ},
                        "gate/decision.json")  # fmt: skip
        log.info("gate: %s", reason)
        return TrainResult(
            run_id=parent.info.run_id,
            model_name=settings.model_name,
            version=version,
            best_model=best,
            metrics=metrics,
            promoted=promoted,
            champion_version=champ,
            reason=reason,
            candidates=candidates,
        )


def _input_example(panel: Panel, lookback: int) -> pd.DataFrame:
    """The last `lookback` rows of two symbols, as the scoring contract sends them."""
    frame = panel.frame
    symbols = frame["symbol"].drop_duplicates().head(2)
    parts = [frame[frame["symbol"] == s].tail(lookback) for s in symbols]
    example = pd.concat(parts)[["symbol", "trade_date", *panel.features]]
    example = example.assign(trade_date=pd.to_datetime(example["trade_date"]))
    return example.reset_index(drop=True)


def gate(
    client: Any,
    settings: Settings,
    prepared: Prepared,
    challenger: WalkForwardResult,
    metric: str,
    min_coverage: float,
) -> tuple[bool, str, str]:
    """(promote?, why, current champion version). Compared on the same walk-forward folds."""
    failures = sanity_failures(challenger, min_coverage)
    current = champion_version(client, settings.model_name)
    champ = "" if current is None else str(current.version)
    if failures:
        return False, f"challenger failed sanity checks: {'; '.join(failures)}", champ
    if current is None:
        return True, "no champion yet: challenger promoted", champ
    new = _finite(challenger.metrics.get(metric, float("nan")))
    tags = current.tags or {}
    if tags.get("folds") == prepared.fingerprint and f"metric.{metric}" in tags:
        old = _finite(float(tags[f"metric.{metric}"]))
        how = "same folds"
    elif tags.get("model_spec"):
        # Scored on other folds (older data): re-run the champion's config on these folds.
        spec = json.loads(tags["model_spec"])
        features = [f for f in tags.get("features", "").split(",") if f]
        config = {**prepared.config, "features": features or None, "models": {"champion": spec}}
        database_url = settings.database_url
        rerun = _rerun_champion(database_url, config, prepared, features)
        old = _finite(rerun.metrics.get(metric, float("nan")))
        how = "champion's config re-run on these folds"
    else:
        return True, f"champion v{champ} has no walk-forward record: challenger promoted", champ
    # Compare at the precision the tags keep, so an equal model is a tie.
    if float(f"{new:.6g}") > float(f"{old:.6g}"):
        return True, (f"challenger {metric} {new:.4f} > champion v{champ} {metric} {old:.4f} "
                      f"({how}): promoted"), champ  # fmt: skip
    return False, (f"challenger {metric} {new:.4f} <= champion v{champ} {metric} {old:.4f} "
                   f"({how}): champion kept"), champ  # fmt: skip


def _rerun_champion(
    database_url: str, config: dict[str, Any], prepared: Prepared, features: list[str]
) -> WalkForwardResult:
    panel = prepared.panel
    if features and features != panel.features:
        missing = [f for f in features if f not in panel.frame.columns]
        if missing:
            raise ValueError(f"the champion's features {missing} are no longer in the marts")
        panel = Panel(panel.frame, features, panel.label, panel.horizon)
    min_history = max(prepared.min_history, model_lookback(config["models"]["champion"]))
    return run_walk_forward(
        "champion", config["models"]["champion"], panel, prepared.folds,
        int(config.get("seed", 0)), min_history, config.get("processors"),
        config.get("backtest") or {}, track=False,
    )  # fmt: skip


def _log_figure(fig: Any, path: str) -> None:
    """Log a figure and close it: pyplot keeps every open figure alive otherwise."""
    import matplotlib.pyplot as plt
    import mlflow

    mlflow.log_figure(fig, path)
    plt.close(fig)


def _fmt(metrics: dict[str, float]) -> str:
    keys = ("rank_ic", "ic", "icir", "directional_accuracy", "sharpe", "benchmark_sharpe")
    return ", ".join(f"{k}={metrics.get(k, float('nan')):.4f}" for k in keys)
