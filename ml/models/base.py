"""The one model interface (Qlib's `fit(dataset)` / `predict(dataset, segment)`), the runtime a
model trains with, and the capabilities the walk-forward asks a model class about."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ml.data.dataset import Dataset
from ml.data.processors import Array

if TYPE_CHECKING:
    from core.settings import Settings


@dataclass(frozen=True)
class Runtime:
    """Where and how a model trains: the settings' training section, never the YAML config."""

    device: str = ""  # cpu | cuda | empty: the model's own choice (CUDA when present)
    progress: bool = False  # a progress bar per epoch

    @classmethod
    def from_settings(cls, settings: Settings) -> Runtime:
        return cls(device=settings.training.device, progress=settings.training.progress)


class Model(abc.ABC):
    """fit on a Dataset's `train` (early-stop on `valid`); predict any segment. No I/O.

    `predict_rows(X_all, rows)` scores rows of a processed feature matrix sorted by symbol then
    date; a model with `lookback` L reads rows `row - L + 1 .. row`, which the caller guarantees
    belong to the same symbol (training: Panel.samples' min_history; scoring: ml.pyfunc).
    """

    name: str = "model"
    lookback: int = 1
    # Checkpoints every epoch under `checkpoint_dir` and resumes from it (the walk-forward
    # gives such a model a folder per fold).
    checkpoints: ClassVar[bool] = False
    # Trains faster on a GPU when there is one: the training DAG sends its walk-forward to the
    # training queue (`gpu` on Celery), every other model's to `default`.
    wants_gpu: ClassVar[bool] = False
    runtime: Runtime = Runtime()

    def __init__(self, seed: int = 0, **kwargs: Any) -> None:
        self.seed = seed
        self.kwargs = kwargs

    @classmethod
    def spec_lookback(cls, kwargs: dict[str, Any]) -> int:
        """The look-back a model built with `kwargs` needs, without building it."""
        return int(kwargs.get("lookback", 1))

    @abc.abstractmethod
    def fit(self, dataset: Dataset) -> Model: ...

    @abc.abstractmethod
    def predict_rows(self, X_all: Array, rows: Array) -> Array:
        """Scores of `rows` of the processed feature matrix `X_all`."""

    def predict(self, dataset: Dataset, segment: str = "test") -> Array:
        return self.predict_rows(dataset.X_all, dataset.rows(segment))

    def feature_importance(self, features: list[str]) -> dict[str, float] | None:
        return None

    def params(self) -> dict[str, Any]:
        return {"model_class": type(self).__name__, "seed": self.seed, **self.kwargs}


def train_and_valid(dataset: Dataset) -> tuple[Array, Array]:
    """Train rows, and validation rows (empty when the dataset has no `valid` segment)."""
    valid = dataset.segments.get("valid", np.zeros(0, dtype=np.int64))
    return dataset.rows("train"), valid
