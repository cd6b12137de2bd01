"""What a training config needs before any model is fitted: the panel read from the marts,
the walk-forward folds, the history every model needs, and the runtime from the settings."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

from core.settings import Settings, get_settings
from ml.config import TrainingConfig
from ml.data.dataset import Dataset, Panel, make_dataset
from ml.data.handler import label_columns, label_horizon, read_panel
from ml.evaluation.walk_forward import Fold, folds_fingerprint, make_folds
from ml.models import Runtime, model_lookback

# Besides the label: the LSTM's auxiliary head (fwd_ret_1d) and the RL trader's reward
# (trade_ret_1d). Neither is a feature; the walk-forward purges by the label's horizon.
EXTRA_LABELS = ("fwd_ret_1d", "trade_ret_1d")


@dataclass
class Prepared:
    config: TrainingConfig
    panel: Panel
    folds: list[Fold]
    min_history: int
    fingerprint: str
    runtime: Runtime = field(default_factory=Runtime)


def prepare(
    database_url: str, config: TrainingConfig, settings: Settings | None = None
) -> Prepared:
    """Panel, folds and the history every model needs, from the marts and the config."""
    settings = settings or get_settings()
    label = config.label
    available = label_columns(database_url)
    if label not in available:
        raise ValueError(f"label {label!r} is not a column of marts.labels_daily")
    labels = [label] + [c for c in EXTRA_LABELS if c in available and c != label]
    keys, matrix, features = read_panel(
        database_url, config.features, labels, dbt_target=settings.dbt.target
    )
    horizon = label_horizon(label, database_url)
    panel = Panel(keys, features, label, horizon, matrix=matrix)
    del matrix
    benchmark = config.backtest.benchmark_symbol
    if benchmark is not None and benchmark not in set(panel.frame["symbol"].unique()):
        # Said before any model trains, not after the first walk-forward (a universe of one's
        # own seldom holds the demo's AAPL).
        raise ValueError(
            f"backtest.benchmark_symbol {benchmark!r} is not a symbol of the data: load it, "
            "name another, or remove the key (the equal-weight benchmark stays)"
        )
    min_history = max(model_lookback(spec) for spec in config.models.values())
    folds = make_folds(panel.calendar, horizon, config.walk_forward)
    return Prepared(
        config,
        panel,
        folds,
        min_history,
        folds_fingerprint(folds, label),
        Runtime.from_settings(settings),
    )


def final_dataset(prepared: Prepared) -> Dataset:
    """The registered model's data: everything up to the last labelled day; the most recent
    `final_valid_days` dates (after a purge gap) for early stopping."""
    panel, cal = prepared.panel, prepared.panel.calendar
    valid_days = prepared.config.final_valid_days
    gap = panel.horizon
    valid_start = len(cal) - valid_days
    train_end = valid_start - gap - 1
    if train_end < 20:
        raise ValueError("too few dates to refit the final model")
    mh = prepared.min_history
    segments = {
        "train": panel.samples(cal[0], cal[train_end], mh, cal[valid_start]),
        "valid": panel.samples(cal[valid_start], cal[-1], mh, None),
    }
    return make_dataset(panel, segments, prepared.config.processors)


def inputs_fingerprint(prepared: Prepared) -> str:
    """What a training's result depends on: the config, the folds and every value of the panel
    (keys, labels, the float32 features). Equal fingerprints: a training would register the
    same model again. Hashes the matrix in place (no copy): about a second per GB."""
    digest = hashlib.blake2b(digest_size=16)
    config = prepared.config.model_dump(mode="json")
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    digest.update(prepared.fingerprint.encode())
    frame = prepared.panel.frame
    digest.update(",".join(prepared.panel.features).encode())
    for column in frame.columns:
        values = frame[column].to_numpy()
        if values.dtype == object:
            digest.update("\x1f".join(map(str, values)).encode())
        else:
            digest.update(np.ascontiguousarray(values).data)
    digest.update(np.ascontiguousarray(prepared.panel.raw).data)
    return digest.hexdigest()
