"""Processors: fitted on the training rows of a panel (one fold's train window), then applied to
every row. Robust z-score, per-day cross-sectional rank, fill of missing values. They are pickled
with the registered model, so scoring transforms exactly as training did."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ml.config import ProcessorSpec

Array = np.ndarray[Any, Any]


class Processor:
    """fit on the training rows of a panel, transform any rows (numpy in, numpy out)."""

    def fit(self, X: np.ndarray, dates: np.ndarray) -> Processor:
        return self

    def transform(self, X: np.ndarray, dates: np.ndarray) -> np.ndarray:
        """The processed rows, as a new array (`X` is left as it is)."""
        return self.transform_inplace(np.array(X, dtype=np.float32), dates)

    def transform_inplace(self, X: np.ndarray, dates: np.ndarray) -> np.ndarray:
        """The processed rows, written over `X` (a float32 array the caller owns) where the
        processor can; returns the result (`X` itself, or a new array)."""
        raise NotImplementedError

    def fit_rows(self, X: np.ndarray, dates: np.ndarray, rows: np.ndarray) -> Processor:
        """`fit` on `rows` of `X`; a processor may override it to avoid copying the rows."""
        return self.fit(X[rows], dates[rows])


class RobustZScore(Processor):
    """(x - median) / (1.4826 * MAD) with the train window's statistics, clipped to +-clip."""

    def __init__(self, clip: float = 5.0) -> None:
        self.clip = clip
        self.median: np.ndarray | None = None
        self.scale: np.ndarray | None = None

    def fit(self, X: np.ndarray, dates: np.ndarray) -> RobustZScore:
        return self.fit_rows(X, dates, np.arange(len(X)))

    def fit_rows(self, X: np.ndarray, dates: np.ndarray, rows: np.ndarray) -> RobustZScore:
        # Column by column: the statistics need one column of the train rows at a time, not
        # a copy of the train matrix and its temporaries (several GB on a real universe).
        n = X.shape[1]
        median, mad, std = (np.zeros(n, dtype=np.float64) for _ in range(3))
        with np.errstate(all="ignore"):
            for j in range(n):
                column = X[rows, j]
                m = np.nanmedian(column)  # in the column's own precision, as a whole-matrix
                median[j] = m  # reduction would compute it
                mad[j] = np.nanmedian(np.abs(column - m)) * 1.4826
                std[j] = np.nanstd(column) if len(column) else 1.0
        self.median = np.nan_to_num(median).astype(np.float32)
        scale = np.where(np.isfinite(mad) & (mad > 1e-12), mad, np.nan_to_num(std))
        self.scale = np.where(scale > 1e-12, scale, 1.0).astype(np.float32)
        return self

    def transform_inplace(self, X: np.ndarray, dates: np.ndarray) -> np.ndarray:
        if self.median is None or self.scale is None:
            raise RuntimeError("RobustZScore.transform before fit")
        X -= self.median
        X /= self.scale
        out: Array = np.clip(X, -self.clip, self.clip, out=X)
        return out


class CSRankNorm(Processor):
    """Each day's cross-sectional rank of every feature, centred and scaled to about unit variance."""

    def transform_inplace(self, X: np.ndarray, dates: np.ndarray) -> np.ndarray:
        frame = pd.DataFrame(X)
        groups = frame.groupby(pd.Series(dates), sort=False)
        ranked = groups.rank().to_numpy()
        present = groups.transform("count").to_numpy()
        counts = groups[0].transform("size").to_numpy()
        # Centred: n names map to (i - 0.5) / n - 0.5, symmetric around 0 (missing stay NaN).
        with np.errstate(invalid="ignore", divide="ignore"):
            out = ((ranked - 0.5) / present - 0.5) * 3.46
        # A lone symbol on a day has no cross-section: it sits at the middle.
        out[counts <= 1] = 0.0
        return np.asarray(out, dtype=np.float32)


class FillNA(Processor):
    """Missing values (warm-up windows, absent features) become `value` (0: the median)."""

    def __init__(self, value: float = 0.0) -> None:
        self.value = value

    def transform_inplace(self, X: np.ndarray, dates: np.ndarray) -> np.ndarray:
        v = self.value
        out: Array = np.nan_to_num(X, copy=False, nan=v, posinf=v, neginf=v)
        return out


PROCESSORS: dict[str, type[Processor]] = {
    "robust_zscore": RobustZScore,
    "cs_rank": CSRankNorm,
    "fillna": FillNA,
}
DEFAULT_PROCESSORS: list[ProcessorSpec] = ["robust_zscore", "fillna"]


def build_processors(specs: Sequence[ProcessorSpec] | None) -> list[Processor]:
    """`["robust_zscore", {"fillna": {"value": 0}}]` -> processors, applied in that order."""
    out: list[Processor] = []
    for spec in DEFAULT_PROCESSORS if specs is None else specs:
        name, kwargs = (spec, {}) if isinstance(spec, str) else next(iter(spec.items()))
        out.append(PROCESSORS[name](**(kwargs or {})))
    return out


def fit_transform(
    processors: list[Processor], X: np.ndarray, dates: np.ndarray, fit_rows: np.ndarray
) -> np.ndarray:
    """Fit each processor on `fit_rows` of the running output, then transform all rows: one
    float32 copy of `X`, processed in place."""
    out = np.array(X, dtype=np.float32)
    for proc in processors:
        proc.fit_rows(out, dates, fit_rows)
        out = proc.transform_inplace(out, dates).astype(np.float32, copy=False)
    return out


def transform(processors: list[Processor], X: np.ndarray, dates: np.ndarray) -> np.ndarray:
    out = np.array(X, dtype=np.float32)
    for proc in processors:
        out = proc.transform_inplace(out, dates).astype(np.float32, copy=False)
    return out
