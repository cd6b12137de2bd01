"""The packaged form of a trained model: an MLflow pyfunc that takes a feature frame."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel


class SignalModel(PythonModel):
    """Wraps a fitted ml.models.Model with the feature list it was trained on."""

    def __init__(self, model: Any, features: list[str], label: str) -> None:
        self.model = model
        self.features = list(features)
        self.label = label

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> np.ndarray:
        missing = [c for c in self.features if c not in model_input.columns]
        if missing:
            raise ValueError(f"input lacks features: {', '.join(missing)}")
        return self.model.predict_frame(model_input[self.features].astype("float64"))
