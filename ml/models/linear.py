from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.linear_model import Ridge

from ml.data.dataset import Dataset
from ml.models.base import Model


class RidgeModel(Model):
    """Ridge regression on the processed features: the baseline every other model has to beat."""

    name = "ridge"

    def __init__(self, seed: int = 0, alpha: float = 1.0, **kwargs: Any) -> None:
        super().__init__(seed=seed, alpha=alpha, **kwargs)
        # copy_X=False: X("train") is already a copy of the rows, centred in place.
        self.regressor = Ridge(alpha=alpha, random_state=seed, copy_X=False)

    def fit(self, dataset: Dataset) -> RidgeModel:
        self.regressor.fit(dataset.X("train"), dataset.y("train"))
        return self

    def predict_rows(self, X_all: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.regressor.predict(X_all[rows]), dtype="float64")

    def feature_importance(self, features: list[str]) -> dict[str, float]:
        return dict(zip(features, np.abs(self.regressor.coef_).tolist(), strict=True))
