"""ml/models/rl_env.py: the trading environment passes gymnasium's checker, shows the agent only
what is known at the close of the day it decides on (never a label, never a later row), and
pays the backtest's returns and costs with the backtest's timing."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env

from ml.data.dataset import Dataset, Panel, time_split
from ml.evaluation.backtest import portfolio_returns
from ml.models.rl_env import ACTIONS, PortfolioEnv, observation_size, rollout
from tests.ml.conftest import synthetic_frame

FEATURES = ["f_signal", "f_noise", "f_scale"]
LABELS = ["fwd_ret_5d", "fwd_ret_1d", "trade_ret_1d"]


def split(frame: pd.DataFrame, processors: list | None = None) -> Dataset:
    panel = Panel(frame, FEATURES, "fwd_ret_5d", 5)
    return time_split(panel, test_fraction=0.25, val_fraction=0.15, processors=processors)


def dated_frame(n_days: int = 120) -> pd.DataFrame:
    """Features that say which row they come from (f_signal: the day's index, f_noise: the
    symbol's), labels in a range no feature takes, and BBB missing every seventh day."""
    frame = synthetic_frame(n_days=n_days)
    day = pd.factorize(frame["trade_date"], sort=True)[0]
    frame["f_signal"] = day.astype(float)
    frame["f_noise"] = 1000.0 + pd.factorize(frame["symbol"], sort=True)[0]
    rng = np.random.default_rng(5)
    for label in LABELS:
        frame[label] = rng.uniform(0.5, 0.6, len(frame))
    return frame[~((frame["symbol"] == "BBB") & (day % 7 == 3))].reset_index(drop=True)


def blocks(env: PortfolioEnv, observation: np.ndarray) -> np.ndarray:
    """Per symbol: its features, present flag and weight."""
    return observation[:-1].reshape(len(env.symbols), -1)


@pytest.mark.parametrize("actions", ACTIONS)
def test_gymnasium_checks_the_environment_for_every_kind_of_action(actions: str) -> None:
    env = PortfolioEnv(split(synthetic_frame(n_days=160)), "train", actions=actions,
                       episode_days=30)  # fmt: skip
    with warnings.catch_warnings():
        # The features are unbounded (raw or z-scores): the checker only warns about that.
        warnings.filterwarnings("ignore", message=".*Box observation space m.*infinity")
        warnings.filterwarnings("ignore", message=".*alternative render modes")
        check_env(env)
    assert env.observation_space.shape == (observation_size(4, len(FEATURES)),)
    first, _ = env.reset(seed=11)
    again, _ = env.reset(seed=11)
    np.testing.assert_array_equal(first, again)


def test_the_observation_of_a_day_holds_that_days_features_and_never_a_label() -> None:
    frame = dated_frame()
    dataset = split(frame, processors=[])  # raw features: each says which row it is
    env = PortfolioEnv(dataset, "train", actions="discrete")
    dates = np.array(sorted(frame["trade_date"].unique()))
    labels = frame[LABELS].to_numpy().ravel()
    segment = dataset.panel.frame.iloc[dataset.rows("train")]
    rng = np.random.default_rng(0)
    observation, _ = env.reset(seed=0)
    held, steps, absent_days = np.zeros(len(env.symbols)), 0, 0
    while True:
        today = env.dates[env.day]
        per_symbol = blocks(env, observation)
        present = per_symbol[:, len(FEATURES)] == 1.0
        rows = segment[segment["trade_date"] == today]
        assert sorted(np.array(env.symbols)[present]) == sorted(rows["symbol"])
        # Every feature shown is of a row dated today, of its own symbol; absent: zeros.
        assert (per_symbol[present, 0] == np.searchsorted(dates, today)).all()
        np.testing.assert_array_equal(per_symbol[present, 1], 1000 + np.flatnonzero(present))
        assert not per_symbol[~present, : len(FEATURES)].any()
        np.testing.assert_array_equal(per_symbol[:, -1], held)
        assert observation[-1] == 1 - held.sum()
        assert not np.isin(observation, labels).any()
        absent_days += int(not present.all())
        action = int(rng.integers(0, len(env.symbols) + 1))
        held = env.target_weights(action, present)
        observation, _, _, truncated, _ = env.step(action)
        steps += 1
        if truncated:
            break
    assert steps == env.n_days > 50 and absent_days > 5


def test_a_signal_only_the_future_holds_cannot_change_what_the_agent_sees() -> None:
    """Rewrite every label (a perfect signal of the next trade, if it could be seen) and every
    feature after day k: the observations up to day k are the same, so any policy acts the
    same on both and cannot profit from the future; the rewards, paid after the step, differ."""
    frame = synthetic_frame(n_days=160)
    dates = np.array(sorted(frame["trade_date"].unique()))
    cutoff = dates[60]
    future = frame.copy()
    rng = np.random.default_rng(1)
    future[LABELS] = rng.normal(0, 0.05, (len(frame), len(LABELS)))
    later = future["trade_date"] > cutoff
    future.loc[later, FEATURES] = rng.normal(size=(int(later.sum()), len(FEATURES)))

    def run(frame: pd.DataFrame) -> tuple[list[np.ndarray], list[float], list]:
        env = PortfolioEnv(split(frame, processors=[]), "train", actions="long_only")
        observation, info = env.reset(seed=0)
        seen, rewards, days = [], [], [info["trade_date"]]
        for step in range(env.n_days):
            seen.append(observation)
            action = np.sin(np.arange(len(env.symbols) + 1) + step).astype(np.float32)
            observation, reward, _, truncated, _ = env.step(action)
            rewards.append(reward)
            if truncated:
                break
            days.append(env.dates[env.day])
        return seen, rewards, days

    seen, rewards, days = run(frame)
    seen_future, rewards_future, _ = run(future)
    known = [i for i, day in enumerate(days) if day <= cutoff]
    assert len(known) > 20
    for i in known:
        np.testing.assert_array_equal(seen[i], seen_future[i])
    assert not np.array_equal(seen[known[-1] + 1], seen_future[known[-1] + 1])  # the test bites
    assert not np.allclose(rewards[: len(known)], rewards_future[: len(known)])


@pytest.mark.parametrize("buy_bps,sell_bps", [(10.0, 10.0), (5.0, 25.0)])
def test_holding_the_top_scored_symbol_earns_what_the_backtest_books(
    buy_bps: float, sell_bps: float
) -> None:
    """The environment's day = the backtest's day for a top-1 book: the same trade_ret_1d
    (decide at t, trade at t+1, earn t+1 -> t+2) and the same cost code."""
    dataset = split(synthetic_frame(n_days=200))
    env = PortfolioEnv(dataset, "valid", actions="discrete", buy_bps=buy_bps, sell_bps=sell_bps)
    frame = dataset.panel.frame.iloc[dataset.rows("valid")]
    scores = pd.Series(np.random.default_rng(2).normal(size=len(frame)), index=frame.index)
    pick = {day: env.symbols.index(group.loc[scores[group.index].idxmax(), "symbol"])
            for day, group in frame.groupby("trade_date")}  # fmt: skip
    days = iter(env.dates)
    book = rollout(env, lambda _: pick[next(days)])

    scored = frame.assign(pred=scores, trade_ret=frame["trade_ret_1d"])
    expected = portfolio_returns(scored, top_k=1, buy_cost_bps=buy_bps, sell_cost_bps=sell_bps)
    assert book["turnover"].sum() > 10  # it trades
    np.testing.assert_allclose(book["net_return"], expected["book"].to_numpy(), atol=1e-12)
    np.testing.assert_allclose(book["cost"], expected["cost"].to_numpy(), atol=1e-12)
    np.testing.assert_allclose(book["turnover"], expected["turnover"].to_numpy())


def test_target_weights_are_long_only_softmax_or_gross_one_long_short_on_present_symbols() -> None:
    dataset = split(synthetic_frame(n_days=160))
    present = np.array([True, False, True, True])
    long_only = PortfolioEnv(dataset, "train", actions="long_only", softmax_scale=5.0)
    weights = long_only.target_weights(np.array([1, 1, -1, -1, 0], dtype=np.float32), present)
    assert weights[1] == 0 and weights[0] > 0.9 and 0 < weights.sum() <= 1
    long_short = PortfolioEnv(dataset, "train", actions="long_short")
    weights = long_short.target_weights(np.array([1, 1, -1, 0], dtype=np.float32), present)
    np.testing.assert_allclose(weights, [0.5, 0.0, -0.5, 0.0])
    discrete = PortfolioEnv(dataset, "train", actions="discrete")
    assert not discrete.target_weights(1, present).any()  # an absent symbol: cash
