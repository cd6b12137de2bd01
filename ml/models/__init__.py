"""Models behind one interface, built from config: a new model is a new file plus a YAML entry."""

from __future__ import annotations

import importlib
from typing import Any

from ml.models.base import Model

REGISTRY = {
    "ridge": "ml.models.linear:RidgeModel",
    "xgboost": "ml.models.gbdt:XGBModel",
    "mlp": "ml.models.neural:MLPModel",
    "lstm_attention": "ml.models.neural:LSTMAttentionModel",
    "transformer": "ml.models.neural:TransformerModel",
    "ensemble": "ml.models.ensemble:EnsembleModel",
    "rl_trader": "ml.models.rl:PolicyGradientTrader",
}


def build_model(spec: dict[str, Any], seed: int = 0) -> Model:
    """Build a model from `{"class": "ridge" | "pkg.module:Class", "kwargs": {...}}`."""
    target = REGISTRY.get(spec["class"], spec["class"])
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(seed=seed, **(spec.get("kwargs") or {}))


def model_lookback(spec: dict[str, Any]) -> int:
    """The look-back a model will need, read from its spec without building it."""
    kwargs = spec.get("kwargs") or {}
    if spec["class"] == "ensemble":
        return max((model_lookback(m) for m in kwargs.get("members", {}).values()), default=1)
    return int(kwargs.get("lookback", 1))


__all__ = ["Model", "build_model", "model_lookback"]
