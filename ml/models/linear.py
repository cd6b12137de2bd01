from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ml.dataset import Dataset
from ml.models.base import Model


class RidgeModel(Model):
    """Standardised ridge regression: the baseline every other model has to beat."""

    name = "ridge"

    def __init__(self, seed: int = 0, alpha: float = 1.0, **kwargs: Any) -> None:
        super().__init__(seed=seed, alpha=alpha, **kwargs)
        # The scaler is fitted inside the pipeline, on the train segment only.
        self.pipeline = make_pipeline(StandardScaler(), Ridge(alpha=alpha, random_state=seed))

    def fit(self, dataset: Dataset) -> RidgeModel:
        self.pipeline.fit(dataset.X("train"), dataset.y("train"))
        return self

    def predict_frame(self, X: Any) -> np.ndarray:  # noqa: N803
        return np.asarray(self.pipeline.predict(X), dtype="float64")
