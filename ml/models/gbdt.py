from __future__ import annotations

from typing import Any

import numpy as np

from ml.data.dataset import Dataset
from ml.models.base import Model, train_and_valid


class XGBModel(Model):
    """Gradient-boosted trees (XGBoost `hist`); CUDA when a GPU is present; early stopping on
    the validation segment when there is one."""

    wants_gpu = True

    name = "xgboost"

    def __init__(
        self,
        seed: int = 0,
        n_estimators: int = 200,
        max_depth: int = 3,
        learning_rate: float = 0.05,
        subsample: float = 0.8,
        early_stopping_rounds: int | None = 20,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            seed=seed,
            n_estimators=n_estimators,
            max_depth=max_depth,
            learning_rate=learning_rate,
            subsample=subsample,
            early_stopping_rounds=early_stopping_rounds,
            **kwargs,
        )
        self.early_stopping_rounds = early_stopping_rounds
        self.options = {
            "n_estimators": n_estimators,
            "max_depth": max_depth,
            "learning_rate": learning_rate,
            "subsample": subsample,
            "tree_method": "hist",
            "random_state": seed,
            "n_jobs": 2,
            **kwargs,
        }
        self.regressor: Any = None

    def fit(self, dataset: Dataset) -> XGBModel:
        try:
            from xgboost import XGBRegressor
        except ImportError:
            raise ImportError(
                "the xgboost model needs XGBoost: pip install 'marketflow[cpu]' "
                "(or 'marketflow[gpu]' for the CUDA build)"
            ) from None

        train, valid = train_and_valid(dataset)
        use_valid = len(valid) > 0 and self.early_stopping_rounds
        # The device is the runtime's (settings), unless the config's kwargs name one.
        options = {"device": _device(self.runtime.device), **self.options}
        self.regressor = XGBRegressor(
            **options, early_stopping_rounds=self.early_stopping_rounds if use_valid else None
        )
        X, y = dataset.X_all, dataset.panel.frame[dataset.label].to_numpy(np.float32)
        eval_set = [(X[valid], y[valid])] if use_valid else None
        self.regressor.fit(X[train], y[train], eval_set=eval_set, verbose=False)
        # Scoring happens on CPU machines too.
        self.regressor.set_params(device="cpu")
        return self

    def predict_rows(self, X_all: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.regressor.predict(X_all[rows]), dtype="float64")

    def feature_importance(self, features: list[str]) -> dict[str, float]:
        scores = self.regressor.get_booster().get_score(importance_type="gain")
        return {name: float(scores.get(f"f{i}", 0.0)) for i, name in enumerate(features)}


def _device(wanted: str = "") -> str:
    """CUDA only when this xgboost build has it and a GPU is visible (`wanted` wins: the
    settings' training device)."""
    import shutil

    import xgboost

    if wanted:
        return wanted
    has_cuda = bool(xgboost.build_info().get("USE_CUDA"))
    return "cuda" if has_cuda and shutil.which("nvidia-smi") else "cpu"
