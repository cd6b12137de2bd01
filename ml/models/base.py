from __future__ import annotations

import abc
from typing import Any

import numpy as np

from ml.dataset import Dataset


class Model(abc.ABC):
    """fit on a Dataset's train segment; predict any segment. No file or database I/O."""

    name: str = "model"

    def __init__(self, seed: int = 0, **kwargs: Any) -> None:
        self.seed = seed
        self.kwargs = kwargs

    @abc.abstractmethod
    def fit(self, dataset: Dataset) -> Model: ...

    @abc.abstractmethod
    def predict_frame(self, X: Any) -> np.ndarray:  # noqa: N803
        """Predict from a feature frame (used by scoring, where there is no label)."""

    def predict(self, dataset: Dataset, segment: str = "test") -> np.ndarray:
        return self.predict_frame(dataset.X(segment))

    def params(self) -> dict[str, Any]:
        return {"model_class": type(self).__name__, "seed": self.seed, **self.kwargs}
