"""ml/train.py end to end: sample prices through dbt, real MLflow (PostgreSQL store), real models.

Every training test has a registered model and an experiment of its own (`ml_settings`), so the
registry state one test sees is the state its own training calls left.
"""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from marketflow.settings import Settings
from ml.dataset import FEATURES, Dataset, label_horizon, load_frame, time_split
from ml.metrics import signal_metrics
from ml.models import build_model
from ml.tracking import CHALLENGER, CHAMPION
from ml.train import DEFAULT_CONFIG, train

GATE_METRICS = ("ic", "rank_ic", "mae", "rmse", "directional_accuracy")
CONFIG = yaml.safe_load(DEFAULT_CONFIG.read_text())
LABEL = CONFIG["label"]


def test_first_training_registers_version_1_as_champion_and_challenger(
    market_url: str, ml_settings: Settings, mlflow_client, tmp_path: Path
) -> None:
    result = train(market_url)  # settings come from the environment, as in the DAG

    name = ml_settings.model_name
    assert (result.model_name, result.version, result.champion_version) == (name, "1", "1")
    assert result.promoted
    assert result.reason == "no champion yet: challenger promoted"
    for alias in (CHAMPION, CHALLENGER):
        version = mlflow_client.get_model_version_by_alias(name, alias)
        assert (str(version.version), version.run_id) == ("1", result.run_id)

    # The best candidate on the test window's IC is the one registered, with its metrics.
    assert set(result.candidates) == set(CONFIG["models"])
    assert result.best_model == max(result.candidates, key=lambda n: result.candidates[n]["ic"])
    assert result.metrics == result.candidates[result.best_model]
    assert mlflow_client.get_model_version(name, "1").tags["model"] == result.best_model

    run = mlflow_client.get_run(result.run_id)
    assert (
        run.info.experiment_id
        == mlflow_client.get_experiment_by_name(ml_settings.mlflow_experiment).experiment_id
    )
    for key in GATE_METRICS:
        assert math.isfinite(run.data.metrics[key])
        assert run.data.metrics[key] == pytest.approx(result.metrics[key])
    assert -1.0 <= run.data.metrics["ic"] <= 1.0
    assert 0.0 <= run.data.metrics["directional_accuracy"] <= 1.0

    # The logged window respects the gap: `horizon` trading dates between train and test.
    params = run.data.params
    horizon = label_horizon(params["label"])
    assert int(params["label_horizon"]) == horizon == 5
    dates = sorted(load_frame(market_url)["trade_date"].unique())
    train_end = date.fromisoformat(params["train_end"])
    test_start = date.fromisoformat(params["test_start"])
    assert [params["train_start"], params["test_end"]] == [str(dates[0]), str(dates[-1])]
    assert len([d for d in dates if train_end < d < test_start]) == horizon
    assert dates[dates.index(train_end) + horizon] < test_start

    children = mlflow_client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{result.run_id}'"
    )
    assert {child.info.run_name for child in children} == set(CONFIG["models"])
    for child in children:
        assert child.data.params["train_end"] == params["train_end"]
        assert child.data.metrics["ic"] == pytest.approx(
            result.candidates[child.info.run_name]["ic"]
        )

    assert "plots/ic.png" in [a.path for a in mlflow_client.list_artifacts(result.run_id, "plots")]
    png = Path(mlflow_client.download_artifacts(result.run_id, "plots/ic.png", str(tmp_path)))
    assert png.read_bytes().startswith(b"\x89PNG")
    assert mlflow_client.list_artifacts(result.run_id, "config")[0].path == "config/models.yaml"


def test_retraining_on_the_same_data_does_not_promote_an_equal_model(
    market_url: str, ml_settings: Settings, mlflow_client
) -> None:
    import mlflow

    first = train(market_url, ml_settings)
    second = train(market_url, ml_settings)

    # Same data, same seed: the same model, so the same IC.
    assert second.best_model == first.best_model
    assert second.metrics["ic"] == first.metrics["ic"]
    # The gate re-scores the champion on the challenger's window and gets exactly that IC too:
    # a tie, which must keep the champion.
    dataset = time_split(
        load_frame(market_url, FEATURES, LABEL), LABEL, float(CONFIG["test_fraction"])
    )
    champion = mlflow.pyfunc.load_model(f"models:/{ml_settings.model_name}@{CHAMPION}")
    test = dataset.segments["test"]
    rescored = test[["trade_date", "symbol"]].assign(
        pred=champion.predict(dataset.X("test")), label=dataset.y("test")
    )
    assert signal_metrics(rescored)["ic"] == second.metrics["ic"]

    assert second.version == "2"
    assert not second.promoted
    assert second.reason.endswith("champion kept")
    assert f"<= champion v1 IC {first.metrics['ic']:.4f}" in second.reason
    assert second.champion_version == "1"
    name = ml_settings.model_name
    assert str(mlflow_client.get_model_version_by_alias(name, CHAMPION).version) == "1"
    assert str(mlflow_client.get_model_version_by_alias(name, CHALLENGER).version) == "2"
    tags = mlflow_client.get_run(second.run_id).data.tags
    assert (tags["promoted"], tags["gate_reason"]) == ("False", second.reason)


# --- honesty: no skill where there is none, and no implausible skill where there is little --


def shuffle_labels_within_dates(frame: pd.DataFrame, label: str, seed: int) -> pd.DataFrame:
    """The same rows, each date's labels dealt out again at random among its symbols."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    out[label] = out.groupby("trade_date")[label].transform(lambda s: rng.permutation(s.to_numpy()))
    return out


def ic_on_test_window(model_spec: dict, dataset: Dataset) -> float:
    model = build_model(model_spec, seed=int(CONFIG["seed"])).fit(dataset)
    test = dataset.segments["test"]
    scored = test[["trade_date", "symbol"]].assign(
        pred=model.predict(dataset), label=dataset.y("test")
    )
    return signal_metrics(scored)["ic"]


# One shuffle's IC on 4 names x ~250 test dates has a spread of about 0.03; the mean of 8 about 0.01.
SHUFFLES = 8


@pytest.mark.parametrize("model", list(CONFIG["models"]))
def test_shuffled_labels_give_no_skill_and_real_labels_only_a_little(
    market_url: str, model: str
) -> None:
    spec = CONFIG["models"][model]
    frame = load_frame(market_url, FEATURES, LABEL)

    real_ic = ic_on_test_window(spec, time_split(frame, LABEL, float(CONFIG["test_fraction"])))
    # An IC of a few hundredths is what honest models of 5-day returns get; much more on four
    # large caps means the features see the label (look-ahead) or train overlaps test.
    assert math.isfinite(real_ic)
    assert abs(real_ic) < 0.15

    # Labels dealt out at random within each date, in train and test alike: whatever the model
    # learns cannot line up with the test labels, so the IC must average out near zero.
    shuffled_ics = []
    for seed in range(SHUFFLES):
        shuffled = shuffle_labels_within_dates(frame, LABEL, seed)
        assert not np.allclose(shuffled[LABEL], frame[LABEL])
        shuffled_ics.append(
            ic_on_test_window(spec, time_split(shuffled, LABEL, float(CONFIG["test_fraction"])))
        )
    assert abs(float(np.mean(shuffled_ics))) < 0.05, shuffled_ics
