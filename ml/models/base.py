from __future__ import annotations

import abc
from typing import Any

import numpy as np

from ml.dataset import Dataset


class Model(abc.ABC):
    """fit on a Dataset's `train` (early-stop on `valid`); predict any segment. No I/O.

    `predict_rows(X_all, rows)` scores rows of a processed feature matrix sorted by symbol then
    date; a model with `lookback` L reads rows `row - L + 1 .. row`, which the caller guarantees
    belong to the same symbol (training: Panel.samples' min_history; scoring: ml.pyfunc).
    """

    name: str = "model"
    lookback: int = 1

    def __init__(self, seed: int = 0, **kwargs: Any) -> None:
        self.seed = seed
        self.kwargs = kwargs

    @abc.abstractmethod
    def fit(self, dataset: Dataset) -> Model: ...

    @abc.abstractmethod
    def predict_rows(self, X_all: np.ndarray, rows: np.ndarray) -> np.ndarray:  # noqa: N803
        """Scores of `rows` of the processed feature matrix `X_all`."""

    def predict(self, dataset: Dataset, segment: str = "test") -> np.ndarray:
        return self.predict_rows(dataset.X_all, dataset.rows(segment))

    def feature_importance(self, features: list[str]) -> dict[str, float] | None:
        return None

    def params(self) -> dict[str, Any]:
        return {"model_class": type(self).__name__, "seed": self.seed, **self.kwargs}


def train_and_valid(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Train rows, and validation rows (empty when the dataset has no `valid` segment)."""
    valid = dataset.segments.get("valid", np.zeros(0, dtype=np.int64))
    return dataset.rows("train"), valid
