"""Fixtures for the ML tests: a fresh MLflow namespace per test (the real market database they
train on, `market_url`, is in tests/conftest.py: the fault drills use it too). Each test that trains gets its own registered model name and experiment in the
session's MLflow store, so aliases and versions never leak from one test into another.
"""

from __future__ import annotations

import uuid

import pytest

from core.settings import Settings


@pytest.fixture
def ml_settings(mlflow_store: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The session's MLflow store, under a model name and an experiment of this test's own."""
    unique = uuid.uuid4().hex[:8]
    for name, value in mlflow_store.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MARKETFLOW_MODEL_NAME", f"signal_{unique}")
    monkeypatch.setenv("MARKETFLOW_MLFLOW_EXPERIMENT", f"experiment_{unique}")
    return Settings()


@pytest.fixture
def mlflow_client(ml_settings: Settings):  # mlflow.MlflowClient
    from mlflow import MlflowClient

    uri = ml_settings.mlflow.tracking_uri
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def synthetic_frame(
    n_days: int = 300,
    symbols: tuple[str, ...] = ("AAA", "BBB", "CCC", "DDD"),
    seed: int = 3,
    signal: float = 1.0,
):  # pandas.DataFrame
    """A panel where fwd_ret_5d is partly `signal` x a feature known at t (plus noise)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2021-01-01", periods=n_days).date
    index = pd.MultiIndex.from_product([symbols, dates], names=["symbol", "trade_date"])
    frame = pd.DataFrame(
        rng.normal(size=(len(index), 3)), columns=["f_signal", "f_noise", "f_scale"], index=index
    ).reset_index()
    frame["f_scale"] = 50 + 10 * frame["f_scale"]  # a feature on another scale than the rest
    noise = rng.normal(0, 0.01, len(frame))
    frame["fwd_ret_5d"] = 0.01 * signal * frame["f_signal"] + noise
    frame["fwd_ret_1d"] = frame["fwd_ret_5d"] / 5 + rng.normal(0, 0.002, len(frame))
    # Tradeable next-day return (the RL trader's reward): the same signal, a day later.
    frame["trade_ret_1d"] = 0.004 * signal * frame["f_signal"] + rng.normal(0, 0.01, len(frame))
    frame["in_universe"] = True
    return frame


@pytest.fixture
def synthetic_panel():  # factory of ml.data.dataset.Panel
    from ml.data.dataset import Panel

    def make(**kwargs):
        return Panel(synthetic_frame(**kwargs), ["f_signal", "f_noise", "f_scale"], "fwd_ret_5d", 5)

    return make


TINY_CONFIG = {
    "label": "fwd_ret_5d",
    "seed": 7,
    "processors": ["robust_zscore", "fillna"],
    "walk_forward": {
        "mode": "expanding",
        "train_days": 400,
        "valid_days": 60,
        "test_days": 150,
        "max_folds": 2,
    },  # fmt: skip
    "final_valid_days": 60,
    "backtest": {"top_k": 1, "cost_bps": 10},
    "selection_metric": "rank_ic",
    "gate": {"metric": "rank_ic", "min_coverage": 0.9},
    "models": {
        "ridge": {"class": "ridge", "kwargs": {"alpha": 10.0}},
        "xgboost": {"class": "xgboost", "kwargs": {"n_estimators": 20, "max_depth": 2}},
        "lstm_attention": {
            "class": "lstm_attention",
            "kwargs": {"lookback": 5, "hidden": 4, "layers": 1, "epochs": 1, "batch_size": 512},
        },
    },
}


@pytest.fixture
def tiny_config(tmp_path_factory: pytest.TempPathFactory):  # factory of a Path
    """Write a small training config (optionally changed) and return its path."""
    import copy

    import yaml

    def make(**changes):
        config = copy.deepcopy(TINY_CONFIG)
        config.update(changes)
        path = tmp_path_factory.mktemp("config") / "models.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    return make
