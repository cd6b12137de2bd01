"""ml/models: every model in ml/config/models.yaml builds from config, fits, and is reproducible."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from ml.dataset import FEATURES, Dataset, time_split
from ml.models import Model, build_model
from ml.models.gbdt import XGBModel
from ml.models.linear import RidgeModel
from ml.train import DEFAULT_CONFIG

CONFIG = yaml.safe_load(DEFAULT_CONFIG.read_text())
SEED = int(CONFIG["seed"])
CLASSES = {"ridge": RidgeModel, "xgboost": XGBModel}


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    """A label that is partly a function of the features, on 3 symbols x 120 business days."""
    rng = np.random.default_rng(3)
    dates = pd.bdate_range("2021-01-01", periods=120).date
    index = pd.MultiIndex.from_product(
        [dates, ["AAA", "BBB", "CCC"]], names=["trade_date", "symbol"]
    )
    frame = pd.DataFrame(
        rng.normal(size=(len(index), len(FEATURES))), columns=FEATURES, index=index
    )
    frame["rsi_14"] = 50 + 10 * frame["rsi_14"]  # a feature on another scale than the rest
    frame["fwd_ret_5d"] = (
        0.01 * frame["ret_5d"] - 0.0005 * frame["rsi_14"] + rng.normal(0, 0.01, len(index))
    )
    return time_split(frame.reset_index(), "fwd_ret_5d")


def test_the_config_lists_both_models() -> None:
    assert set(CONFIG["models"]) == set(CLASSES)


@pytest.mark.parametrize("name", list(CLASSES))
def test_build_model_from_the_yaml_config(name: str) -> None:
    spec = CONFIG["models"][name]

    model = build_model(spec, seed=SEED)

    assert isinstance(model, CLASSES[name])
    assert isinstance(model, Model)
    assert model.name == name
    assert model.seed == SEED
    params = model.params()
    assert params["model_class"] == CLASSES[name].__name__
    assert params["seed"] == SEED
    assert {key: params[key] for key in spec["kwargs"]} == spec["kwargs"]


def test_yaml_kwargs_reach_the_estimators() -> None:
    ridge = build_model(CONFIG["models"]["ridge"], seed=SEED)
    xgb = build_model(CONFIG["models"]["xgboost"], seed=SEED)

    assert ridge.pipeline[-1].alpha == CONFIG["models"]["ridge"]["kwargs"]["alpha"]
    xgb_params = xgb.regressor.get_params()
    for key, value in CONFIG["models"]["xgboost"]["kwargs"].items():
        assert xgb_params[key] == value
    assert xgb_params["random_state"] == SEED


def test_a_model_class_can_be_named_by_its_import_path() -> None:
    model = build_model({"class": "ml.models.linear:RidgeModel", "kwargs": {"alpha": 3.0}}, seed=1)

    assert isinstance(model, RidgeModel)
    assert model.params() == {"model_class": "RidgeModel", "seed": 1, "alpha": 3.0}


@pytest.mark.parametrize("name", list(CLASSES))
def test_same_seed_gives_identical_predictions(name: str, dataset: Dataset) -> None:
    spec = CONFIG["models"][name]

    first = build_model(spec, seed=SEED).fit(dataset).predict(dataset, "test")
    second = build_model(spec, seed=SEED).fit(dataset).predict(dataset, "test")

    assert first.dtype == np.float64
    assert first.shape == (len(dataset.segments["test"]),)
    assert np.isfinite(first).all()
    np.testing.assert_array_equal(first, second)
    assert np.std(first) > 0


def test_the_seed_matters_where_the_model_is_random(dataset: Dataset) -> None:
    spec = CONFIG["models"]["xgboost"]  # subsample < 1: each seed draws other rows per tree

    a = build_model(spec, seed=SEED).fit(dataset).predict(dataset)
    b = build_model(spec, seed=SEED + 1).fit(dataset).predict(dataset)

    assert not np.array_equal(a, b)


@pytest.mark.parametrize("name", list(CLASSES))
def test_predict_on_a_segment_is_predict_frame_on_its_features(name: str, dataset: Dataset) -> None:
    model = build_model(CONFIG["models"][name], seed=SEED).fit(dataset)

    for segment in ("train", "test"):
        np.testing.assert_array_equal(
            model.predict(dataset, segment), model.predict_frame(dataset.X(segment))
        )


def test_ridge_standardises_with_train_statistics_only(dataset: Dataset) -> None:
    model = build_model(CONFIG["models"]["ridge"], seed=SEED).fit(dataset)

    scaler = model.pipeline[0]
    np.testing.assert_allclose(scaler.mean_, dataset.X("train").mean().to_numpy())
    assert not np.allclose(scaler.mean_, pd.concat([dataset.X("train"), dataset.X("test")]).mean())


@pytest.mark.parametrize("name", list(CLASSES))
def test_models_learn_a_signal_that_is_there(name: str, dataset: Dataset) -> None:
    model = build_model(CONFIG["models"][name], seed=SEED).fit(dataset)

    pred = model.predict(dataset, "test")
    assert np.corrcoef(pred, dataset.y("test"))[0, 1] > 0.3
