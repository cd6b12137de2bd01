from __future__ import annotations

from typing import Any

import numpy as np

from ml.dataset import Dataset
from ml.models.base import Model


class XGBModel(Model):
    """Gradient-boosted trees (XGBoost); uses CUDA when a GPU is present."""

    name = "xgboost"

    def __init__(
        self,
        seed: int = 0,
        n_estimators: int = 200,
        max_depth: int = 3,
        learning_rate: float = 0.05,
        subsample: float = 0.8,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            seed=seed,
            n_estimators=n_estimators,
            max_depth=max_depth,
            learning_rate=learning_rate,
            subsample=subsample,
            **kwargs,
        )
        from xgboost import XGBRegressor

        self.regressor = XGBRegressor(
            n_estimators=n_estimators,
            max_depth=max_depth,
            learning_rate=learning_rate,
            subsample=subsample,
            random_state=seed,
            n_jobs=2,
            device=_device(),
            **kwargs,
        )

    def fit(self, dataset: Dataset) -> XGBModel:
        self.regressor.fit(dataset.X("train"), dataset.y("train"))
        return self

    def predict_frame(self, X: Any) -> np.ndarray:  # noqa: N803
        return np.asarray(self.regressor.predict(X), dtype="float64")


def _device() -> str:
    """CUDA only when this xgboost build has it and a GPU is visible (MARKETFLOW_DEVICE wins)."""
    import os
    import shutil

    import xgboost

    wanted = os.environ.get("MARKETFLOW_DEVICE")
    if wanted:
        return wanted
    has_cuda = bool(xgboost.build_info().get("USE_CUDA"))
    return "cuda" if has_cuda and shutil.which("nvidia-smi") else "cpu"
