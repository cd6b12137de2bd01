"""A gymnasium environment of the daily trading decision, over a segment of a Dataset: one step
per trading day, the book's next tradeable return after the backtest's costs as reward.

Observation (float32, flat; see `observation_size`): for each symbol of the dataset, in one
fixed order (the panel's, sorted by name), that day's processed features, a flag that is 1 when
the symbol has a row in the segment that day (0: features are zeros, the symbol cannot be held
today) and the book's current weight in it; then the weight in cash. Only the features of rows
dated t and the book the agent chose before enter the observation of day t: no label and no row
dated after t ever does. (A segment's rows are the platform's samples, which need a known label:
a symbol about to stop trading within the label horizon is absent, as it is for every model.)

Action:
- `discrete` (DQN): `Discrete(n_symbols + 1)`, hold symbol i with the whole book, or cash (the
  last action); a symbol without a row today means cash.
- `long_only` (PPO, A2C): `Box(-1, 1, n_symbols + 1)`, one logit per symbol and one for cash;
  target weights = softmax(`softmax_scale` x logits) over cash and the symbols present today.
- `long_short`: `Box(-1, 1, n_symbols)`, target weights = logits / max(1, sum |logits|) on
  the symbols present today (gross exposure at most 1, the rest in cash).

Reward: the agent decides at the close of t; the book is traded at the close of t+1 and earns
close t+1 -> t+2, the `trade_ret_1d` of day t's row (as the backtest's book formed on t's
scores does), less the cost of trading from the previous weights to the new ones:
`ml.evaluation.backtest.trading_cost`, the backtest's own code, at `buy_bps` / `sell_bps` (and
`min_cost`, a fraction of the book). As in the backtest, weights do not drift between
rebalances and a name with an unknown return earns nothing. The reward is
`reward_scale x (net - risk_aversion x net^2)`, a mean-variance utility of the net return;
`info` carries the raw net and gross returns, the cost and the turnover. The reward of day t is
realised two rows later, so a trainer must purge at least two rows between segments.

Episodes: the whole segment from its first day, or windows of `episode_days` days starting on a
day drawn with the generator `reset(seed=...)` seeds. The last step of an episode is truncated
(the market goes on), its observation the last day's features with the new book.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import pandas as pd
from gymnasium import spaces

from ml.data.dataset import Dataset
from ml.data.processors import Array
from ml.evaluation.backtest import trading_cost

Actions = Literal["discrete", "long_only", "long_short"]
ACTIONS: tuple[Actions, ...] = ("discrete", "long_only", "long_short")


def observation_size(n_symbols: int, n_features: int) -> int:
    """Per symbol: its features, its present flag and its weight; then the weight in cash."""
    return n_symbols * (n_features + 2) + 1


def symbol_order(dataset: Dataset) -> list[str]:
    """The fixed symbol order of every environment over `dataset` (the panel's, by name)."""
    return [str(s) for s in pd.unique(dataset.panel.frame["symbol"])]


class PortfolioEnv(gym.Env[Array, Any]):
    """The daily trading decision over `segment` of `dataset` (see the module's docstring)."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        dataset: Dataset,
        segment: str = "train",
        *,
        actions: Actions = "discrete",
        reward: str = "trade_ret_1d",
        buy_bps: float = 10.0,
        sell_bps: float = 10.0,
        min_cost: float = 0.0,
        episode_days: int | None = None,
        reward_scale: float = 1.0,
        risk_aversion: float = 0.0,
        softmax_scale: float = 5.0,
    ) -> None:
        if actions not in ACTIONS:
            raise ValueError(f"actions must be one of {ACTIONS}, got {actions!r}")
        frame = dataset.panel.frame
        if reward not in frame.columns:
            raise ValueError(f"the panel has no {reward} column (load it with the labels)")
        self.symbols = symbol_order(dataset)
        self.actions = actions
        self.costs = (float(buy_bps), float(sell_bps), float(min_cost))
        self.episode_days = episode_days
        self.reward_scale = float(reward_scale)
        self.risk_aversion = float(risk_aversion)
        self.softmax_scale = float(softmax_scale)

        rows = dataset.rows(segment)
        codes = pd.Index(self.symbols).get_indexer(frame["symbol"].to_numpy()[rows])
        dates = dataset.panel.dates[rows]
        self.dates = np.unique(dates)
        if len(self.dates) == 0:
            raise ValueError(f"segment {segment!r} has no rows")
        n_days, n_symbols = len(self.dates), len(self.symbols)
        # The panel row of each (day, symbol) of the segment; -1: none that day.
        self.row = np.full((n_days, n_symbols), -1, dtype=np.int64)
        self.row[np.searchsorted(self.dates, dates), codes] = rows
        present = self.row >= 0
        # The processed matrix itself, not a (days x symbols x features) copy: a day's rows are
        # gathered when it is observed.
        self.X_all = dataset.X_all
        n_features = self.X_all.shape[1]
        self.present = present.astype(np.float32)
        # Rewards only: never part of an observation.
        returns = np.zeros((n_days, n_symbols))
        returns[present] = frame[reward].to_numpy(dtype=float)[self.row[present]]
        self._returns = np.nan_to_num(returns)

        self.observation_space = spaces.Box(
            -np.inf, np.inf, (observation_size(n_symbols, n_features),), dtype=np.float32
        )
        self.action_space: spaces.Space[Any]
        if actions == "discrete":
            self.action_space = spaces.Discrete(n_symbols + 1)
        else:
            width = n_symbols + 1 if actions == "long_only" else n_symbols
            self.action_space = spaces.Box(-1.0, 1.0, (width,), np.float32)
        self.day = self.start = self.end = 0
        self.weights = np.zeros(n_symbols)

    @property
    def n_days(self) -> int:
        return len(self.dates)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Array, dict[str, Any]]:
        super().reset(seed=seed)
        length = self.n_days if self.episode_days is None else min(self.episode_days, self.n_days)
        self.start = int(self.np_random.integers(0, self.n_days - length + 1))
        self.day, self.end = self.start, self.start + length
        self.weights = np.zeros(len(self.symbols))
        return self._observation(self.day), {"trade_date": self.dates[self.day]}

    def step(self, action: Any) -> tuple[Array, float, bool, bool, dict[str, Any]]:
        day = self.day
        target = self.target_weights(action, self.present[day] > 0)
        cost, turnover = trading_cost(target - self.weights, *self.costs)
        gross = float(target @ self._returns[day])
        net = gross - cost
        self.weights = target
        self.day += 1
        truncated = self.day >= self.end
        observation = self._observation(min(self.day, self.end - 1))
        reward = self.reward_scale * (net - self.risk_aversion * net * net)
        info = {"trade_date": self.dates[day], "net_return": net, "gross_return": gross,
                "cost": cost, "turnover": turnover}  # fmt: skip
        return observation, float(reward), False, truncated, info

    def target_weights(self, action: Any, present: Array) -> Array:
        """The book an action asks for, on the symbols `present` today."""
        weights = np.zeros(len(self.symbols))
        if self.actions == "discrete":
            choice = int(action)
            if choice < len(self.symbols) and present[choice]:
                weights[choice] = 1.0
            return weights
        logits = np.clip(np.asarray(action, dtype=float), -1.0, 1.0)
        if self.actions == "long_short":
            weights[present] = logits[: len(self.symbols)][present]
            return weights / max(1.0, float(np.abs(weights).sum()))
        # long_only: softmax over cash (the last logit) and today's symbols.
        allowed = np.append(present, True)
        scaled = np.where(allowed, self.softmax_scale * logits, -np.inf)
        exp = np.exp(scaled - scaled.max())
        shares: Array = exp / exp.sum()
        return shares[:-1]

    def features(self, day: int) -> Array:
        """The processed features of each symbol on `day` (zeros where it has no row)."""
        rows = self.row[day]
        features = np.zeros((len(rows), self.X_all.shape[1]), dtype=np.float32)
        features[rows >= 0] = np.nan_to_num(self.X_all[rows[rows >= 0]])
        return features

    def _observation(self, day: int) -> Array:
        cash = 1.0 - float(np.abs(self.weights).sum())
        per_symbol = np.concatenate(
            [self.features(day), self.present[day][:, None], self.weights[:, None]], axis=1
        )
        return np.append(per_symbol.ravel(), cash).astype(np.float32)


def rollout(env: PortfolioEnv, act: Callable[[Array], Any], seed: int = 0) -> pd.DataFrame:
    """One episode of `act` (observation -> action) in `env`: per day, the trade date, the
    book's net and gross return, its cost and turnover."""
    observation, _ = env.reset(seed=seed)
    days = []
    done = False
    while not done:
        observation, _, terminated, truncated, info = env.step(act(observation))
        days.append(info)
        done = terminated or truncated
    return pd.DataFrame(days, columns=["trade_date", "net_return", "gross_return", "cost",
                                       "turnover"])  # fmt: skip


__all__ = ["ACTIONS", "PortfolioEnv", "observation_size", "rollout", "symbol_order"]
