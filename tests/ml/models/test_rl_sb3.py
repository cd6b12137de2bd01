"""ml/models/rl_sb3.py: stable-baselines3's DQN and PPO learn a reward planted in the features
and beat a random policy after costs, trade less when trading costs more, repeat exactly for a
seed on CPU, score rows like any model, and pickle (and load through the packaged model without
stable-baselines3)."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ml.data.dataset import Dataset, Panel, time_split
from ml.evaluation.metrics import signal_metrics
from ml.models import build_model
from ml.models.rl_env import rollout
from ml.models.rl_sb3 import DQNTrader, PPOTrader, SB3Trader
from tests.ml.conftest import synthetic_frame

FEATURES = ["f_signal", "f_noise", "f_scale"]
# A few thousand steps: about 20 passes over the ~140 training days, 2-5 s a fit on one core.
FAST = {"timesteps": 3000, "eval_every": 500}


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    """trade_ret_1d = 0.008 f_signal + noise: the reward is planted in a feature known at t."""
    panel = Panel(synthetic_frame(n_days=260, signal=2.0), FEATURES, "fwd_ret_5d", 5)
    return time_split(panel, test_fraction=0.25, val_fraction=0.15, min_history=10)


@pytest.mark.parametrize("algorithm", ["dqn", "ppo"])
def test_the_agent_learns_a_planted_reward_and_beats_random_after_costs(
    algorithm: str, dataset: Dataset
) -> None:
    for seed in (0, 1, 2):
        trader = SB3Trader(seed=seed, algorithm=algorithm, **FAST).fit(dataset)
        earned = trader.greedy_book(dataset, "test")["net_return"].mean()
        env = trader.environment(dataset, "test")
        actions = env.action_space
        actions.seed(seed)
        random = rollout(env, lambda _, space=actions: space.sample())["net_return"].mean()
        # 10 bps a side. Seeds 0-2 earned 47-60 bps a day (DQN), 20-31 (PPO) on the test
        # window; random policies lost 5-51. Rank IC of the scores: 0.46-0.52.
        assert earned > random + 0.001, (seed, earned, random)
        # Its scores rank the symbols by the reward it was paid.
        scores = trader.predict(dataset, "test")
        keys = dataset.keys("test").assign(pred=scores, label=dataset.y("test", "trade_ret_1d"))
        assert signal_metrics(keys)["rank_ic"] > 0.2, seed
        assert trader.history and "valid_return" in trader.history[-1]


@pytest.mark.parametrize("algorithm", ["dqn", "ppo"])
def test_higher_trading_costs_teach_it_to_trade_less(algorithm: str, dataset: Dataset) -> None:
    cheap = SB3Trader(seed=1, algorithm=algorithm, cost_bps=0, **FAST).fit(dataset)
    dear = SB3Trader(seed=1, algorithm=algorithm, cost_bps=200, **FAST).fit(dataset)
    cheap_turnover = cheap.greedy_book(dataset, "test")["turnover"].mean()
    dear_turnover = dear.greedy_book(dataset, "test")["turnover"].mean()
    # Seeds 0-2: DQN 1.15-1.34 a day at no cost, 0 at 2 % a side; PPO 0.53-0.77 and 0.04-0.07.
    assert dear_turnover < cheap_turnover / 2, (dear_turnover, cheap_turnover)


@pytest.mark.parametrize("name", ["rl_dqn", "rl_ppo"])
def test_it_is_reproducible_on_cpu_and_pickles_with_its_agent(name: str, dataset: Dataset) -> None:
    spec = {"class": name, "kwargs": {"timesteps": 1000, "eval_every": 250}}
    first = build_model(spec, seed=3).fit(dataset)
    second = build_model(spec, seed=3).fit(dataset)
    scores = first.predict(dataset, "test")
    np.testing.assert_array_equal(scores, second.predict(dataset, "test"))
    assert first.history == second.history

    restored = pickle.loads(pickle.dumps(first))
    np.testing.assert_array_equal(restored.predict(dataset, "test"), scores)
    # The SB3 agent came back from its saved bytes: it trades exactly as before.
    assert restored.greedy_book(dataset, "test").equals(first.greedy_book(dataset, "test"))


LOAD_WITHOUT_SB3 = """
import pickle, sys
import numpy as np
sys.modules["stable_baselines3"] = None  # scoring must not need it
sys.modules["gymnasium"] = None
packaged, frame = pickle.load(open(sys.argv[1], "rb"))
np.save(sys.argv[2], packaged.predict(None, frame))
"""


def test_the_packaged_model_scores_without_stable_baselines3(
    dataset: Dataset, tmp_path: Path
) -> None:
    """The champion path pickles the model inside ml.pyfunc.SignalModel; loading it back and
    scoring needs torch and our code only, as a registered model's environment has."""
    import cloudpickle

    from ml.pyfunc import SignalModel

    trader = DQNTrader(seed=0, timesteps=500, eval_every=250).fit(dataset)
    packaged = SignalModel(trader, dataset.features, dataset.label, dataset.processors)
    rows = dataset.rows("test")
    frame = dataset.panel.feature_frame(rows)
    (tmp_path / "model.pkl").write_bytes(cloudpickle.dumps((packaged, frame)))
    loaded = subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_SB3, str(tmp_path / "model.pkl"),
         str(tmp_path / "scores.npy")],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[3],
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    scores = np.load(tmp_path / "scores.npy")
    np.testing.assert_allclose(scores, trader.predict_rows(dataset.X_all, rows), rtol=1e-5)


def test_the_registry_builds_each_algorithm_and_a2c_is_an_option(dataset: Dataset) -> None:
    assert isinstance(build_model({"class": "rl_dqn"}), DQNTrader)
    ppo = build_model({"class": "rl_ppo", "kwargs": {"actions": "long_short"}})
    assert isinstance(ppo, PPOTrader) and ppo.kwargs["actions"] == "long_short"
    a2c = build_model({"class": "rl_sb3", "kwargs": {"algorithm": "a2c", "timesteps": 400}})
    assert a2c.fit(dataset).kwargs["actions"] == "long_only"
    assert np.isfinite(a2c.predict(dataset, "test")).all()
    with pytest.raises(ValueError, match="cannot take 'long_only' actions"):
        SB3Trader(algorithm="dqn", actions="long_only")
    with pytest.raises(ValueError, match="algorithm must be one of"):
        SB3Trader(algorithm="sac")


def test_it_refuses_segments_purged_for_a_shorter_horizon_than_its_reward() -> None:
    panel = Panel(synthetic_frame(n_days=200), FEATURES, "fwd_ret_5d", 1)
    dataset = time_split(panel, test_fraction=0.25, val_fraction=0.15)
    with pytest.raises(ValueError, match="horizon of at least 2 rows"):
        DQNTrader(timesteps=100).fit(dataset)
