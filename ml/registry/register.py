"""Registration of a challenger: the refitted model logged as a pyfunc (processors, signature,
input example, pinned pip requirements), registered, given its champion card and `@challenger`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.config import ModelSpec
from ml.data.dataset import Dataset, Panel
from ml.models import Model
from ml.registry.card import CHALLENGER, card_tags, version_metric_values, write_card


@dataclass(frozen=True)
class Registered:
    version: str
    train_start: date
    train_end: date


# What the pickled model imports when it loads (ml.pyfunc, ml.models.*), by distribution name.
MODEL_REQUIREMENTS = ("mlflow", "cloudpickle", "numpy", "pandas", "pyarrow", "scipy",
                      "scikit-learn", "torch", "pydantic", "pyyaml", "tqdm")  # fmt: skip
# Our own code, logged with the model (`code_paths`): the model's classes live in `ml`.
CODE_PATHS = [str(Path(__file__).resolve().parents[1])]


def pip_requirements() -> list[str]:
    """The model's own environment, pinned to this one's versions, as any machine can install
    it: public versions (a local build tag such as `2.13.0+cpu` names a wheel only the machine
    that built it has; `torch==2.13.0` still picks that wheel where pip/uv are configured to
    find it), and `xgboost` for `xgboost-cpu` (the same code, built without CUDA)."""
    pins = [f"{name}=={_public(metadata.version(name))}" for name in MODEL_REQUIREMENTS
            if _installed(name)]  # fmt: skip
    for dist in ("xgboost-cpu", "xgboost"):
        if _installed(dist):
            pins.append(f"xgboost=={_public(metadata.version(dist))}")
            break
    return pins


def _public(version: str) -> str:
    return version.split("+", 1)[0]


def _installed(name: str) -> bool:
    try:
        metadata.version(name)
        return True
    except metadata.PackageNotFoundError:
        return False


def input_example(panel: Panel, lookback: int) -> pd.DataFrame:
    """The last `lookback` rows of two symbols, as the scoring contract sends them."""
    symbols = panel.frame["symbol"].to_numpy()
    rows = np.concatenate(
        [np.flatnonzero(symbols == s)[-lookback:] for s in pd.unique(symbols)[:2]]
    ) if len(symbols) else np.array([], dtype=np.int64)  # fmt: skip
    example = panel.feature_frame(rows)
    return example.assign(trade_date=pd.to_datetime(example["trade_date"]))


def register_challenger(
    client: Any,
    model_name: str,
    *,
    best: str,
    spec: ModelSpec,
    model: Model,
    final: Dataset,
    test_window: tuple[date, date],
    fingerprint: str,
    gate_metric: str,
    metrics: dict[str, float],
) -> Registered:
    """Log `model` (fitted on `final`) into the active run, register it as a new version of
    `model_name` with its card, and point `@challenger` at it."""
    import mlflow
    from mlflow.models import infer_signature

    from ml.pyfunc import SignalModel

    panel = final.panel
    python_model = SignalModel(model, panel.features, panel.label, final.processors)
    example = input_example(panel, python_model.lookback)
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=python_model,
        signature=infer_signature(example, python_model.predict(None, example)),
        input_example=example,
        pip_requirements=pip_requirements(),
        code_paths=CODE_PATHS,
        registered_model_name=model_name,
    )
    version = str(info.registered_model_version)
    train_start, train_end = final.window("train")
    tags = card_tags(
        model=best,
        label=panel.label,
        label_horizon=panel.horizon,
        lookback=python_model.lookback,
        features=panel.features,
        train_start=train_start,
        train_end=train_end,
        test_start=test_window[0],
        test_end=test_window[1],
        folds=fingerprint,
        gate_metric=gate_metric,
        model_spec=spec.as_dict(),
    )
    write_card(client, model_name, version, tags)
    # The walk-forward metrics as the logged model's own (the version's page shows them; the
    # card reads them back with ml.registry.card.version_metrics); tags stay lineage.
    mlflow.log_metrics(version_metric_values(metrics), model_id=info.model_id)
    mlflow.log_params({"train_start": str(train_start), "train_end": str(train_end)})
    client.set_registered_model_alias(model_name, CHALLENGER, version)
    return Registered(version, train_start, train_end)
