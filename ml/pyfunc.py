"""The packaged form of a trained model: an MLflow pyfunc that scores a long history frame.

Input (see ml.inference): `symbol`, `trade_date` and the feature columns, each symbol's last
`lookback` trading days up to the day scored. The fitted processors turn the raw features into
the model's inputs exactly as in training (the cross-sectional ones per day); a row scores NaN
when its symbol has fewer than `lookback` rows up to it in the frame.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc.model import PythonModel

from ml.data.processors import transform


class SignalModel(PythonModel):
    """Wraps a fitted ml.models.Model with its processors, features, label and look-back."""

    def __init__(
        self, model: Any, features: list[str], label: str, processors: list[Any] | None = None
    ) -> None:
        self.model = model
        self.features = list(features)
        self.label = label
        self.processors = list(processors or [])
        self.lookback = int(getattr(model, "lookback", 1))

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> np.ndarray:
        missing = [c for c in ("symbol", "trade_date", *self.features) if c not in model_input]
        if missing:
            raise ValueError(f"input lacks columns: {', '.join(missing)}")
        frame = model_input.reset_index(drop=True)
        dates = pd.to_datetime(frame["trade_date"]).dt.date
        order = np.lexsort((dates.to_numpy(), frame["symbol"].astype(str).to_numpy()))
        symbols = frame["symbol"].astype(str).to_numpy()[order]
        raw = frame[self.features].to_numpy(dtype=np.float64)[order].astype(np.float32)
        X = transform(self.processors, raw, dates.to_numpy()[order])
        first = np.r_[True, symbols[1:] != symbols[:-1]]
        starts = np.maximum.accumulate(np.where(first, np.arange(len(symbols)), 0))
        rows = np.flatnonzero(np.arange(len(symbols)) - starts >= self.lookback - 1)
        sorted_scores = np.full(len(symbols), np.nan)
        if len(rows):
            sorted_scores[rows] = self.model.predict_rows(X, rows)
        scores = np.empty(len(symbols))
        scores[order] = sorted_scores
        return scores
