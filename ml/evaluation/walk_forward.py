"""Walk-forward evaluation: rolling or expanding folds on the trading calendar.

Fold k: train | gap | valid | gap | test, each gap at least the label horizon in trading dates,
and on top of the calendar gap every train (valid) row whose label is realised on or after the
first valid (test) date is dropped: a symbol with missing days realises its label later than
`horizon` dates, and would otherwise leak. Test windows advance by `step_days`; `rolling` keeps
`train_days` of training history, `expanding` keeps everything from the first date.
Processors are fitted on each fold's train rows only. Tracked, each fold's metrics are steps
of the active MLflow run (`fold/<metric>`, step = the fold's index).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.config import BacktestConfig, ModelSpec, ProcessorSpec, WalkForwardConfig
from ml.data.dataset import Dataset, Panel, make_dataset
from ml.evaluation.backtest import backtest
from ml.evaluation.metrics import signal_metrics
from ml.models import Runtime, as_spec, build_model, model_class

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fold:
    index: int
    train_start: date
    train_end: date
    valid_start: date
    valid_end: date
    test_start: date
    test_end: date

    def as_params(self) -> dict[str, str]:
        return {k: str(v) for k, v in asdict(self).items()}


def make_folds(calendar: np.ndarray, horizon: int, config: WalkForwardConfig) -> list[Fold]:
    """Folds over a sorted array of trading dates."""
    gap = horizon if config.gap_days is None else config.gap_days
    if gap < horizon:
        raise ValueError(f"gap of {gap} days is shorter than the label horizon ({horizon})")
    if config.mode not in ("expanding", "rolling"):
        raise ValueError(f"walk-forward mode must be expanding or rolling, not {config.mode!r}")
    step = config.step_days or config.test_days
    n = len(calendar)
    first_test = config.train_days + gap + config.valid_days + gap
    folds: list[Fold] = []
    test_start = first_test
    while test_start + min(config.test_days, 20) <= n:
        test_end = min(test_start + config.test_days, n) - 1
        valid_end = test_start - gap - 1
        valid_start = valid_end - config.valid_days + 1
        train_end = valid_start - gap - 1
        train_start = 0 if config.mode == "expanding" else train_end - config.train_days + 1
        folds.append(
            Fold(
                len(folds),
                calendar[train_start],
                calendar[train_end],
                calendar[valid_start],
                calendar[valid_end],
                calendar[test_start],
                calendar[test_end],
            )
        )
        test_start += step
    if not folds:
        raise ValueError(
            f"{n} trading dates are too few for one fold of {config.train_days} train, "
            f"{config.valid_days} valid and {config.test_days} test days with {gap}-day gaps"
        )
    if config.max_folds:
        folds = [
            Fold(i, *list(asdict(f).values())[1:]) for i, f in enumerate(folds[-config.max_folds :])
        ]
    return folds


def folds_fingerprint(folds: list[Fold], label: str) -> str:
    """Identifies the folds (dates and label): equal fingerprints mean comparable metrics."""
    text = label + "|" + ";".join(",".join(f.as_params().values()) for f in folds)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fold_segments(panel: Panel, fold: Fold, min_history: int) -> dict[str, np.ndarray]:
    return {
        "train": panel.samples(fold.train_start, fold.train_end, min_history, fold.valid_start),
        "valid": panel.samples(fold.valid_start, fold.valid_end, min_history, fold.test_start),
        "test": panel.samples(fold.test_start, fold.test_end, min_history, None),
    }


def fold_dataset(
    panel: Panel, fold: Fold, min_history: int, processors: Sequence[ProcessorSpec] | None = None
) -> Dataset:
    return make_dataset(panel, fold_segments(panel, fold, min_history), processors)


@dataclass
class WalkForwardResult:
    name: str
    scored: pd.DataFrame  # fold, trade_date, symbol, pred, label, trade_ret
    fold_metrics: list[dict[str, float]]
    metrics: dict[str, float] = field(default_factory=dict)
    importance: dict[str, float] | None = None
    eligible_rows: int = 0

    @property
    def coverage(self) -> float:
        finite = int(np.isfinite(self.scored["pred"]).sum())
        return finite / self.eligible_rows if self.eligible_rows else 0.0


def traded_returns(frame: pd.DataFrame) -> pd.Series:
    """The one-day return a book built on day t's signal earns: close[t+1] -> close[t+2].

    A signal dated t is computed from close[t]; a live system trades on it at the next close
    at the earliest, so the book never earns the close[t] -> close[t+1] move (fwd_ret_1d).
    `trade_ret_1d` is that return in marts.labels_daily; a panel without it takes each
    symbol's next-row fwd_ret_1d (`frame` is sorted by symbol and trade_date).
    """
    if "trade_ret_1d" in frame.columns:
        return frame["trade_ret_1d"]
    if "fwd_ret_1d" in frame.columns:
        return frame.groupby("symbol", sort=False)["fwd_ret_1d"].shift(-1)
    raise ValueError("the backtest needs trade_ret_1d or fwd_ret_1d in the panel")


def scored_frame(dataset: Dataset, pred: np.ndarray, segment: str = "test") -> pd.DataFrame:
    frame = dataset.panel.frame
    rows = dataset.rows(segment)
    traded = traded_returns(frame)
    return pd.DataFrame(
        {
            "trade_date": frame["trade_date"].to_numpy()[rows],
            "symbol": frame["symbol"].to_numpy()[rows],
            "pred": pred,
            # Metrics use the raw label, whatever the model was fitted on.
            "label": frame[dataset.panel.label].to_numpy(dtype=float)[rows],
            "trade_ret": traded.to_numpy(dtype=float)[rows],
        }
    )


def run_walk_forward(
    name: str,
    spec: ModelSpec | Mapping[str, Any],
    panel: Panel,
    folds: list[Fold],
    seed: int = 0,
    min_history: int = 1,
    processors: Sequence[ProcessorSpec] | None = None,
    backtest_options: BacktestConfig | None = None,
    track: bool = False,
    on_fold: Callable[[int, dict[str, float]], None] | None = None,
    checkpoint_root: Path | None = None,
    runtime: Runtime | None = None,
) -> WalkForwardResult:
    """Fit `spec` on every fold's train (early-stopping on valid), score its test window;
    metrics of the pooled out-of-sample predictions, with the backtest's.

    With `checkpoint_root`, a neural model checkpoints every epoch under
    `<root>/<name>_<spec hash>/fold_<k>`: a run killed mid-fit resumes that fold where it stopped."""
    import mlflow

    spec = as_spec(spec)
    bt = backtest_options or BacktestConfig()
    pieces, fold_metrics = [], []
    importance: dict[str, float] = {}
    eligible = 0
    for fold in folds:
        dataset = fold_dataset(panel, fold, min_history, processors).with_label_processor(
            spec.label_processor
        )
        if not len(dataset.rows("train")) or not len(dataset.rows("test")):
            raise ValueError(f"fold {fold.index} of {name} has an empty train or test segment")
        fold_spec = spec
        if checkpoint_root is not None and model_class(spec).checkpoints:
            # Keyed by the spec too: a changed config never resumes another's weights.
            key = hashlib.sha256(spec.fingerprint().encode()).hexdigest()[:12]
            folder = checkpoint_root / f"{name}_{key}" / f"fold_{fold.index}"
            kwargs = {**spec.kwargs, "checkpoint_dir": str(folder)}
            fold_spec = spec.model_copy(update={"kwargs": kwargs})
        model = build_model(fold_spec, seed=seed, runtime=runtime).fit(dataset)
        scored = scored_frame(dataset, model.predict(dataset, "test")).assign(fold=fold.index)
        eligible += len(scored)
        metrics = signal_metrics(scored.dropna(subset=["pred"]))
        metrics.update(
            {
                "n_train": float(len(dataset.rows("train"))),
                "n_valid": float(len(dataset.rows("valid"))),
            }
        )
        fold_metrics.append(metrics)
        for feature, value in (model.feature_importance(panel.features) or {}).items():
            importance[feature] = importance.get(feature, 0.0) + value / len(folds)
        pieces.append(scored)
        if track:
            # Into the active (the candidate's) run, one step per fold: a chart per metric
            # across folds, not a run per fold.
            mlflow.log_metrics({f"fold/{k}": v for k, v in _finite_only(metrics).items()},
                               step=fold.index)  # fmt: skip
        if on_fold is not None:
            on_fold(fold.index, metrics)
        log.info("%s fold %d: rank_ic=%.4f ic=%.4f", name, fold.index,
                 metrics["rank_ic"], metrics["ic"])  # fmt: skip
        del dataset, model  # before the next fold's matrix is built, not after
    scored_all = pd.concat(pieces, ignore_index=True)
    result = WalkForwardResult(name, scored_all, fold_metrics, importance=importance or None,
                               eligible_rows=eligible)  # fmt: skip
    result.metrics = evaluate(scored_all, seed=seed, strategy=bt)
    result.metrics["coverage"] = result.coverage
    return result


def evaluate(
    scored: pd.DataFrame, seed: int = 0, strategy: BacktestConfig | None = None
) -> dict[str, float]:
    """Signal metrics and backtest stats (of `strategy`) of pooled out-of-sample predictions."""
    clean = scored.dropna(subset=["pred", "label"])
    metrics = signal_metrics(clean)
    metrics.update(backtest(clean, strategy, seed=seed).stats)
    return metrics


def _finite_only(metrics: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if v is not None and np.isfinite(v)}
