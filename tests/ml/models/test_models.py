"""ml/models and ml/trainer: the zoo builds from config, learns a signal that is there, is
reproducible on CPU, resumes from a checkpoint, and packages into the scoring contract."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from ml.config import DEFAULT_CONFIG
from ml.data.dataset import Dataset, time_split
from ml.evaluation.metrics import signal_metrics
from ml.models import Model, Runtime, build_model, model_lookback
from ml.models.ensemble import EnsembleModel
from ml.models.gbdt import XGBModel
from ml.models.linear import RidgeModel
from ml.models.neural import LSTMAttentionModel, MLPModel, TransformerModel
from ml.models.rl import PolicyGradientTrader
from ml.models.rl_sb3 import DQNTrader
from ml.models.trainer import Trainer, TrainerConfig
from ml.pyfunc import SignalModel

CONFIG = yaml.safe_load(DEFAULT_CONFIG.read_text())
SEED = int(CONFIG["seed"])
CLASSES = {
    "ridge": RidgeModel,
    "mlp": MLPModel,
    "xgboost": XGBModel,
    "lstm_attention": LSTMAttentionModel,
    "transformer": TransformerModel,
    "ensemble_mean": EnsembleModel,
    "ensemble_weighted": EnsembleModel,
    "ensemble_stacking": EnsembleModel,
    "rl_trader": PolicyGradientTrader,
    "rl_dqn": DQNTrader,
}
# Small and quick: the same classes as the config with test-sized training.
FAST = {"epochs": 6, "lr": 0.01, "batch_size": 128, "patience": 3}


def fast_spec(name: str) -> dict:
    spec = copy.deepcopy(CONFIG["models"][name])
    if spec["class"] in ("mlp", "lstm_attention", "transformer"):
        spec["kwargs"].update(FAST)
        spec["kwargs"].update({"lookback": 10} if "lookback" in spec["kwargs"] else {})
    return spec


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    from ml.data.dataset import Panel
    from tests.ml.conftest import synthetic_frame

    panel = Panel(synthetic_frame(n_days=260), ["f_signal", "f_noise", "f_scale"], "fwd_ret_5d", 5)
    return time_split(panel, test_fraction=0.25, val_fraction=0.15, min_history=10)


def test_the_config_lists_the_whole_zoo() -> None:
    assert set(CONFIG["models"]) == set(CLASSES)


@pytest.mark.parametrize("name", list(CLASSES))
def test_build_model_from_the_yaml_config(name: str) -> None:
    spec = CONFIG["models"][name]

    model = build_model(spec, seed=SEED)

    assert isinstance(model, CLASSES[name])
    assert isinstance(model, Model)
    assert model.seed == SEED
    params = model.params()
    assert params["model_class"] == CLASSES[name].__name__
    if not isinstance(model, EnsembleModel):
        assert {key: params[key] for key in spec["kwargs"]} == spec["kwargs"]
    assert model_lookback(spec) == int(spec["kwargs"].get("lookback", 1)) or name.startswith(
        "ensemble"
    )


def test_a_model_class_can_be_named_by_its_import_path() -> None:
    model = build_model({"class": "ml.models.linear:RidgeModel", "kwargs": {"alpha": 3.0}})
    assert isinstance(model, RidgeModel) and model.regressor.alpha == 3.0


@pytest.mark.parametrize("name", list(CLASSES))
def test_models_learn_a_signal_that_is_there_and_are_reproducible(
    name: str, dataset: Dataset
) -> None:
    first = build_model(fast_spec(name), seed=SEED).fit(dataset).predict(dataset, "test")
    second = build_model(fast_spec(name), seed=SEED).fit(dataset).predict(dataset, "test")

    np.testing.assert_array_equal(first, second)  # same config and seed: identical on CPU
    assert np.isfinite(first).all()
    keys = dataset.keys("test")
    metrics = signal_metrics(keys.assign(pred=first, label=dataset.y("test")))
    # The label is mostly f_signal at t (RankIC about 0.7 for a perfect model); the Transformer
    # forecasts daily steps of which only the first carries that signal, so it gets less.
    assert metrics["rank_ic"] > 0.2, metrics


def test_the_lstm_has_a_head_per_horizon(dataset: Dataset) -> None:
    model = build_model(fast_spec("lstm_attention"), seed=SEED).fit(dataset)
    assert isinstance(model, LSTMAttentionModel)
    assert model.module.heads.out_features == 2  # fwd_ret_5d and fwd_ret_1d
    assert model.module.lstm.num_layers == CONFIG["models"]["lstm_attention"]["kwargs"]["layers"]


def test_transformer_targets_are_the_symbols_next_daily_returns(dataset: Dataset) -> None:
    model = TransformerModel(lookback=10, steps=3)
    targets = model.targets(dataset)
    frame = dataset.panel.frame
    one_day = frame["fwd_ret_1d"].to_numpy(np.float32)
    last = np.flatnonzero(
        np.r_[frame["symbol"].to_numpy()[1:] != frame["symbol"].to_numpy()[:-1], True]
    )
    row = 7
    assert targets[row].tolist() == one_day[row : row + 3].tolist()
    # At a symbol's end the steps beyond its data are missing, never the next symbol's.
    assert np.isnan(targets[last[0], 1:]).all() and targets[last[0], 0] == one_day[last[0]]
    with pytest.raises(ValueError, match="reach past the label horizon"):
        TransformerModel(steps=6).targets(dataset)


def test_an_interrupted_fit_resumes_from_its_checkpoint(
    dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = fast_spec("lstm_attention")
    spec["kwargs"].update({"epochs": 4, "patience": 10, "checkpoint_dir": str(tmp_path)})
    whole = build_model(spec, seed=SEED).fit(dataset)

    real_save = Trainer._save

    def save_then_die(self, path, module, optimizer, scheduler, scaler, generator, epoch, *rest):
        real_save(self, path, module, optimizer, scheduler, scaler, generator, epoch, *rest)
        if epoch == 1:
            raise KeyboardInterrupt("killed after epoch 2")

    monkeypatch.setattr(Trainer, "_save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        build_model(spec, seed=SEED).fit(dataset)
    assert (tmp_path / "last.pt").exists()
    monkeypatch.setattr(Trainer, "_save", real_save)

    resumed = build_model(spec, seed=SEED).fit(dataset)

    assert [h["epoch"] for h in resumed.history] == [0, 1, 2, 3]
    assert resumed.history == whole.history
    np.testing.assert_array_equal(resumed.predict(dataset), whole.predict(dataset))
    assert not (tmp_path / "last.pt").exists()  # a finished fit leaves no stale checkpoint


class _Planted:
    """What a hostile checkpoint would hold: unpickling it runs a command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_would_run_code_is_refused_not_executed(
    dataset: Dataset, tmp_path: Path
) -> None:
    import pickle

    import torch

    marker = tmp_path / "ran"
    ckpt_dir = tmp_path / "ckpt"
    ckpt_dir.mkdir()
    torch.save({"module": _Planted(marker)}, ckpt_dir / "last.pt")
    spec = fast_spec("lstm_attention")
    spec["kwargs"].update({"epochs": 1, "checkpoint_dir": str(ckpt_dir)})

    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        build_model(spec, seed=SEED).fit(dataset)
    assert not marker.exists()


def test_trainer_picks_cpu_here_and_honours_the_override() -> None:
    assert Trainer(TrainerConfig()).device == ("cuda" if torch.cuda.is_available() else "cpu")
    # The settings' device (MARKETFLOW_DEVICE) wins over the config's.
    assert Trainer(TrainerConfig(device="cuda"), runtime=Runtime(device="cpu")).device == "cpu"


def test_packaged_model_scores_full_windows_only_in_any_row_order(dataset: Dataset) -> None:
    model = build_model(fast_spec("lstm_attention"), seed=SEED).fit(dataset)
    packaged = SignalModel(model, dataset.features, dataset.label, dataset.processors)
    frame = dataset.panel.frame
    history = pd.concat(
        [frame[frame["symbol"] == "AAA"].tail(12), frame[frame["symbol"] == "BBB"].tail(9)]
    )[["symbol", "trade_date", *dataset.features]]

    scores = packaged.predict(None, history)
    shuffled = history.sample(frac=1.0, random_state=0)
    again = pd.Series(packaged.predict(None, shuffled), index=shuffled.index).loc[history.index]

    assert packaged.lookback == 10
    # AAA's last 3 rows have 10 rows of history in the frame; BBB (9 rows) has none.
    assert np.isnan(scores[:9]).all() and np.isfinite(scores[9:12]).all()
    assert np.isnan(scores[12:]).all()
    np.testing.assert_allclose(again.to_numpy(), scores)
    rows = np.flatnonzero(frame["symbol"] == "AAA")[-3:]
    np.testing.assert_allclose(scores[9:12], model.predict_rows(dataset.X_all, rows), rtol=1e-5)


def test_epoch_samples_bounds_the_rows_an_epoch_trains_on(
    dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`epoch_samples`: each epoch trains on that many rows drawn afresh, not on every row (a
    real universe's millions of rows on CPU), and the model still learns."""
    from ml.data.windows import SequenceWindows

    seen: dict[int, int] = {}  # rows asked of each windows object; the training one first
    real_batch = SequenceWindows.batch

    def counting(self: SequenceWindows, positions: torch.Tensor) -> tuple:
        seen[id(self)] = seen.get(id(self), 0) + len(positions)
        return real_batch(self, positions)

    monkeypatch.setattr(SequenceWindows, "batch", counting)
    kwargs = {"hidden": [16], "epochs": 4, "batch_size": 64, "lr": 0.01, "patience": 9}
    full = MLPModel(seed=SEED, **kwargs).fit(dataset)
    per_epoch_full = next(iter(seen.values())) / len(full.history)
    seen.clear()
    sampled = MLPModel(seed=SEED, epoch_samples=256, **kwargs).fit(dataset)
    assert len(sampled.history) == 4
    assert next(iter(seen.values())) == 4 * 256
    assert per_epoch_full == len(dataset.rows("train")) > 256
    keys = dataset.keys("test")
    pred = sampled.predict(dataset, "test")
    assert signal_metrics(keys.assign(pred=pred, label=dataset.y("test")))["rank_ic"] > 0.2
