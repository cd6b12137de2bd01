"""Models behind one interface, built from config: a new model is a new file plus a YAML entry."""

from __future__ import annotations

import importlib
from typing import Any

from ml.models.base import Model

REGISTRY = {
    "ridge": "ml.models.linear:RidgeModel",
    "xgboost": "ml.models.gbdt:XGBModel",
}


def build_model(spec: dict[str, Any], seed: int = 0) -> Model:
    """Build a model from `{"class": "ridge" | "pkg.module:Class", "kwargs": {...}}`."""
    target = REGISTRY.get(spec["class"], spec["class"])
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(seed=seed, **spec.get("kwargs", {}))


__all__ = ["Model", "build_model"]
