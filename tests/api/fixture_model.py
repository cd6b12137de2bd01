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
        # Vectorised, as a real tabular model's predict is: rows arrive sorted by symbol, date.
        row_scores = model_input[self.features].to_numpy(dtype="float64") @ self.weights
        if self.lookback == 1:
            return row_scores
        symbols = model_input["symbol"].to_numpy()
        sums = np.cumsum(np.concatenate([[0.0], row_scores]))
        out = np.full(len(row_scores), np.nan)
        k = self.lookback
        for i in range(k - 1, len(row_scores)):
            if symbols[i - k + 1] == symbols[i]:
                out[i] = (sums[i + 1] - sums[i + 1 - k]) / k
        return out


set_model(WeightedSum())
