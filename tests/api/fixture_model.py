"""A tiny MarketFlow-shaped pyfunc for the API tests and the benchmark (MLflow "models from
code": this file is copied into the model, so loading it needs nothing from the test suite).

score = mean over the last `lookback` rows of a symbol of sum(weight * feature); rows without a
full window score NaN, as the inference contract says.
"""

from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import set_model


class WeightedSum(mlflow.pyfunc.PythonModel):
    def load_context(self, context: Any) -> None:
        config = context.model_config
        self.features = list(config["features"])
        self.weights = np.asarray(config["weights"], dtype="float64")
        self.lookback = int(config.get("lookback", 1))

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> np.ndarray:
        row_scores = model_input[self.features].astype("float64").to_numpy() @ self.weights
        frame = pd.DataFrame({"symbol": model_input["symbol"].to_numpy(), "s": row_scores})
        windowed = frame.groupby("symbol", sort=False)["s"].transform(
            lambda s: s.rolling(self.lookback, min_periods=self.lookback).mean()
        )
        return windowed.to_numpy(dtype="float64")


set_model(WeightedSum())
