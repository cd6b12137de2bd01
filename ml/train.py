"""Train the candidate models, log them to MLflow, register the best, and gate promotion.

The gate is honest: the current champion is re-scored on the challenger's test window, and
the challenger takes `@champion` only if its IC there is higher.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from marketflow.settings import Settings, get_settings
from ml.dataset import FEATURES, Dataset, label_horizon, load_frame, time_split
from ml.metrics import daily_ic, signal_metrics
from ml.models import build_model
from ml.tracking import CHALLENGER, CHAMPION, champion_version, configure, ensure_experiment

log = logging.getLogger(__name__)

DEFAULT_CONFIG = Path(__file__).parent / "config" / "models.yaml"
GATE_METRIC = "ic"


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


def _pip_requirements() -> list[str]:
    wanted = ["mlflow", "numpy", "pandas", "scikit-learn", "cloudpickle"]
    wanted.append("xgboost-cpu" if _installed("xgboost-cpu") else "xgboost")
    return [f"{name}=={metadata.version(name)}" for name in wanted if _installed(name)]


def _installed(name: str) -> bool:
    try:
        metadata.version(name)
        return True
    except metadata.PackageNotFoundError:
        return False


def _ic_figure(frame: pd.DataFrame, title: str) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ic = daily_ic(frame, "pred", "label")
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(pd.to_datetime(ic.index), ic.cumsum().to_numpy(), color="tab:blue")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_title(title)
    ax.set_ylabel("cumulative daily IC")
    fig.tight_layout()
    return fig


def _evaluate(predict: Any, dataset: Dataset) -> tuple[dict[str, float], pd.DataFrame]:
    """Metrics of `predict(features)` on the test segment, and the scored rows."""
    test = dataset.segments["test"]
    scored = pd.DataFrame(
        {
            "trade_date": test["trade_date"],
            "symbol": test["symbol"],
            "pred": predict(dataset.X("test")),
            "label": dataset.y("test"),
        }
    )
    return signal_metrics(scored), scored


def train(
    database_url: str,
    settings: Settings | None = None,
    config_path: Path = DEFAULT_CONFIG,
) -> TrainResult:
    import mlflow
    from mlflow.models import infer_signature

    from ml.pyfunc import SignalModel

    settings = settings or get_settings()
    config = yaml.safe_load(config_path.read_text())
    label = config.get("label", "fwd_ret_5d")
    seed = int(config.get("seed", 0))
    frame = load_frame(database_url, FEATURES, label)
    dataset = time_split(frame, label, test_fraction=float(config.get("test_fraction", 0.2)))
    train_start, train_end = dataset.window("train")
    test_start, test_end = dataset.window("test")
    log.info(
        "dataset: %d train rows %s..%s, %d test rows %s..%s, gap %d days",
        len(dataset.segments["train"]),
        train_start,
        train_end,
        len(dataset.segments["test"]),
        test_start,
        test_end,
        label_horizon(label),
    )

    client = configure(settings)
    ensure_experiment(settings)
    candidates: dict[str, dict[str, float]] = {}
    fitted: dict[str, tuple[Any, pd.DataFrame]] = {}
    with mlflow.start_run(run_name=f"train_{test_end}") as parent:
        window = {
            "label": label,
            "label_horizon": label_horizon(label),
            "features": ",".join(FEATURES),
            "train_start": str(train_start),
            "train_end": str(train_end),
            "test_start": str(test_start),
            "test_end": str(test_end),
            "seed": seed,
        }
        mlflow.log_params(window)
        mlflow.log_dict(config, "config/models.yaml")
        for name, spec in config["models"].items():
            with mlflow.start_run(run_name=name, nested=True):
                model = build_model(spec, seed=seed).fit(dataset)
                metrics, scored = _evaluate(model.predict_frame, dataset)
                mlflow.log_params({**window, **model.params()})
                mlflow.log_metrics(metrics)
                candidates[name] = metrics
                fitted[name] = (model, scored)
                log.info("%s: %s", name, _fmt(metrics))

        best = max(candidates, key=lambda n: _finite(candidates[n][GATE_METRIC]))
        model, scored = fitted[best]
        metrics = candidates[best]
        mlflow.log_metrics(metrics)
        mlflow.set_tag("best_model", best)
        mlflow.log_figure(
            _ic_figure(scored, f"{best}: cumulative IC on the test window"), "plots/ic.png"
        )
        sample = dataset.X("test").head(20)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=SignalModel(model, FEATURES, label),
            signature=infer_signature(sample, model.predict_frame(sample)),
            input_example=sample.head(3),
            pip_requirements=_pip_requirements(),
            registered_model_name=settings.model_name,
        )
        version = str(info.registered_model_version)
        client.set_registered_model_alias(settings.model_name, CHALLENGER, version)
        for key in ("ic", "rank_ic", "directional_accuracy", "rmse"):
            client.set_model_version_tag(settings.model_name, version, key, f"{metrics[key]:.6f}")
        client.set_model_version_tag(settings.model_name, version, "model", best)

        promoted, reason, champ = _gate(client, settings, dataset, metrics)
        if promoted:
            client.set_registered_model_alias(settings.model_name, CHAMPION, version)
            champ = version
        mlflow.set_tags({"promoted": str(promoted), "gate_reason": reason})
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


def _gate(
    client: Any, settings: Settings, dataset: Dataset, metrics: dict[str, float]
) -> tuple[bool, str, str]:
    """(promote?, why, current champion version) — the champion is re-scored on this test window."""
    import mlflow

    current = champion_version(client, settings.model_name)
    if current is None:
        return True, "no champion yet: challenger promoted", ""
    champion = mlflow.pyfunc.load_model(f"models:/{settings.model_name}@{CHAMPION}")
    champ_ic = _finite(_evaluate(champion.predict, dataset)[0][GATE_METRIC])
    new_ic = _finite(metrics[GATE_METRIC])
    if new_ic > champ_ic:
        why = (
            f"challenger IC {new_ic:.4f} > champion v{current.version} IC {champ_ic:.4f}: promoted"
        )
        return True, why, str(current.version)
    why = f"challenger IC {new_ic:.4f} <= champion v{current.version} IC {champ_ic:.4f}: champion kept"
    return False, why, str(current.version)


def _finite(x: float) -> float:
    return x if x == x else float("-inf")


def _fmt(metrics: dict[str, float]) -> str:
    keys = ("ic", "rank_ic", "directional_accuracy", "mae", "rmse")
    return ", ".join(f"{k}={metrics[k]:.4f}" for k in keys)
