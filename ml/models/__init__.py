"""Models behind one interface, built from config: a new model is a new file plus a YAML entry."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from ml.config import ModelSpec
from ml.models.base import Model, Runtime

REGISTRY = {
    "ridge": "ml.models.linear:RidgeModel",
    "xgboost": "ml.models.gbdt:XGBModel",
    "mlp": "ml.models.neural:MLPModel",
    "lstm_attention": "ml.models.neural:LSTMAttentionModel",
    "transformer": "ml.models.neural:TransformerModel",
    "ensemble": "ml.models.ensemble:EnsembleModel",
    "rl_trader": "ml.models.rl:PolicyGradientTrader",
    "rl_sb3": "ml.models.rl_sb3:SB3Trader",
    "rl_dqn": "ml.models.rl_sb3:DQNTrader",
    "rl_ppo": "ml.models.rl_sb3:PPOTrader",
}


def as_spec(spec: ModelSpec | Mapping[str, Any]) -> ModelSpec:
    return spec if isinstance(spec, ModelSpec) else ModelSpec.model_validate(spec)


def model_class(spec: ModelSpec | Mapping[str, Any]) -> type[Model]:
    """The class `spec` names: a REGISTRY key or "pkg.module:Class"."""
    target = REGISTRY.get(as_spec(spec).class_, as_spec(spec).class_)
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, Model)):
        raise TypeError(f"{target} is not a ml.models.Model")
    return cls


def build_model(
    spec: ModelSpec | Mapping[str, Any], seed: int = 0, runtime: Runtime | None = None
) -> Model:
    """Build a model from `{"class": "ridge" | "pkg.module:Class", "kwargs": {...}}`;
    `runtime` (device, progress bars) comes from the settings, not the config."""
    spec = as_spec(spec)
    model = model_class(spec)(seed=seed, **spec.kwargs)
    if runtime is not None:
        model.runtime = runtime
    return model


def model_lookback(spec: ModelSpec | Mapping[str, Any]) -> int:
    """The look-back a model will need, read from its spec without building it."""
    spec = as_spec(spec)
    return model_class(spec).spec_lookback(spec.kwargs)


__all__ = ["Model", "Runtime", "as_spec", "build_model", "model_class", "model_lookback"]
