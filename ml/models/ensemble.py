"""Ensembles of other configured models: averaging, validation-weighted averaging, stacking.

Members are built from the same `{"class", "kwargs"}` specs as any model. Predictions are
standardised per member on the training rows before they are combined, so a member that
predicts on a larger scale does not dominate the average.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ml.data.dataset import Dataset
from ml.evaluation.metrics import rank_ic_of
from ml.models.base import Model


class EnsembleModel(Model):
    """`method`: `mean` (equal weights), `weighted` (weights from each member's validation
    RankIC, negatives clipped to 0) or `stacking` (ridge on out-of-fold member predictions)."""

    name = "ensemble"

    def __init__(self, seed: int = 0, members: dict[str, Any] | None = None,
                 method: str = "mean", folds: int = 3, alpha: float = 1.0,
                 **kwargs: Any) -> None:  # fmt: skip
        if not members:
            raise ValueError("an ensemble needs members")
        if method not in ("mean", "weighted", "stacking"):
            raise ValueError(f"unknown ensemble method {method!r}")
        super().__init__(seed=seed, members=members, method=method, folds=folds, alpha=alpha,
                         **kwargs)  # fmt: skip
        self.method = method
        self.member_specs = members
        self.members: dict[str, Model] = {}
        self.weights: dict[str, float] = {}
        self.center: dict[str, tuple[float, float]] = {}
        self.meta: Any = None

    @classmethod
    def spec_lookback(cls, kwargs: dict[str, Any]) -> int:
        from ml.models import model_lookback

        return max((model_lookback(m) for m in (kwargs.get("members") or {}).values()), default=1)

    @property
    def lookback(self) -> int:  # type: ignore[override]
        return max((m.lookback for m in self.members.values()), default=1)

    def _build(self, name: str) -> Model:
        from ml.models import build_model

        return build_model(self.member_specs[name], seed=self.seed, runtime=self.runtime)

    def fit(self, dataset: Dataset) -> EnsembleModel:
        train = dataset.rows("train")
        for name in self.member_specs:
            model = self._build(name).fit(dataset)
            self.members[name] = model
            pred = model.predict_rows(dataset.X_all, train)
            std = float(np.std(pred))
            self.center[name] = (float(np.mean(pred)), std if std > 0 else 1.0)
        names = list(self.members)
        if self.method == "mean":
            self.weights = {n: 1.0 / len(names) for n in names}
        elif self.method == "weighted":
            self.weights = self._validation_weights(dataset)
        else:
            self._fit_stacker(dataset)
        return self

    def _validation_weights(self, dataset: Dataset) -> dict[str, float]:
        valid = dataset.segments.get("valid")
        if valid is None or not len(valid):
            return {n: 1.0 / len(self.members) for n in self.members}
        keys = dataset.keys("valid")
        label = dataset.y("valid")
        skill = {}
        for name, model in self.members.items():
            pred = model.predict_rows(dataset.X_all, valid)
            skill[name] = max(0.0, rank_ic_of(keys["trade_date"].to_numpy(), pred, label))
        total = sum(skill.values())
        if total <= 0:
            return {n: 1.0 / len(skill) for n in skill}
        return {n: s / total for n, s in skill.items()}

    def _fit_stacker(self, dataset: Dataset) -> None:
        """Out-of-fold predictions on the training window: the window is cut into `folds` time
        blocks; block j is predicted by members fitted on blocks < j, with a purge of the label
        horizon; the ridge meta-model learns on those predictions only."""
        from sklearn.linear_model import Ridge

        panel = dataset.panel
        train = dataset.rows("train")
        dates = np.array(sorted(set(panel.dates[train])))
        blocks = np.array_split(dates, int(self.kwargs["folds"]) + 1)
        oof_x, oof_y = [], []
        for j in range(1, len(blocks)):
            block_start = blocks[j][0]
            fit_rows = train[
                (panel.dates[train] < block_start) & (panel.label_end[train] < block_start)
            ]
            pred_rows = train[np.isin(panel.dates[train], blocks[j])]
            if len(fit_rows) < 50 or not len(pred_rows):
                continue
            inner = dataset.subset({"train": fit_rows})
            cols = []
            for name in self.member_specs:
                model = self._build(name).fit(inner)
                mean, std = self.center[name]
                cols.append((model.predict_rows(dataset.X_all, pred_rows) - mean) / std)
            oof_x.append(np.column_stack(cols))
            oof_y.append(panel.frame[dataset.label].to_numpy(np.float64)[pred_rows])
        self.meta = Ridge(alpha=float(self.kwargs["alpha"]))
        if oof_x:
            self.meta.fit(np.vstack(oof_x), np.concatenate(oof_y))
            self.weights = dict(zip(self.members, self.meta.coef_.tolist(), strict=True))
        else:
            self.meta = None
            self.weights = {n: 1.0 / len(self.members) for n in self.members}

    def _member_matrix(self, X_all: np.ndarray, rows: np.ndarray) -> np.ndarray:
        cols = []
        for name, model in self.members.items():
            mean, std = self.center[name]
            cols.append((model.predict_rows(X_all, rows) - mean) / std)
        return np.column_stack(cols)

    def predict_rows(self, X_all: np.ndarray, rows: np.ndarray) -> np.ndarray:
        matrix = self._member_matrix(X_all, rows)
        if self.meta is not None:
            return np.asarray(self.meta.predict(matrix), dtype="float64")
        weights = np.array([self.weights[n] for n in self.members])
        # Standardised scores have no return scale: put the combination back on the scale of
        # the members' average prediction so MAE/RMSE stay comparable.
        scale = float(np.mean([self.center[n][1] for n in self.members]))
        combined: np.ndarray = matrix @ weights * scale
        return combined

    def params(self) -> dict[str, Any]:
        return {"model_class": type(self).__name__, "seed": self.seed, "method": self.method,
                "members": ",".join(self.member_specs)}  # fmt: skip
