"""Reinforcement-learning traders from stable-baselines3: DQN (Q-learning) on the discrete
environment (hold one symbol or cash), PPO or A2C (policy gradient) on target weights, all over
ml/models/rl_env.PortfolioEnv, rewarded by the book's next tradeable return after the
backtest's costs.

Networks: every symbol is scored by the same small MLP of its own block of the observation (its
features, its present flag, the book's weight in it), cash by a learned bias and a bonus for
holding it (`SymbolScorer`). DQN reads those scores as Q-values, PPO/A2C as the means of the
action logits (with a critic, an MLP of the whole observation). Sharing one scorer keeps the
agent small and lets it rank symbols it never held; it also gives the platform its per-row
score: `predict_rows` is the scorer's value of a row's features for a book that does not hold
the symbol yet (the Q-value of buying it, or its logit), so IC, the backtest, the gate and the
API treat the agent like every model of the zoo.

Training: `timesteps` environment steps on the `train` segment (episodes of `episode_days` days
or the whole window); every `eval_every` steps the greedy policy trades the `valid` segment
after costs, the best policy is kept and training stops after `patience` evaluations without a
better one. `history` holds each evaluation with the last values SB3's logger reported; SB3
writes no files and prints nothing. CUDA when present (`device`, or the settings' override);
on CPU, one torch thread and the seed make a fit repeat exactly.

Pickles with its SB3 agent as the bytes of SB3's own `save()`; scoring needs only torch and
this module, the agent is loaded back (with stable-baselines3) when `agent` is asked for.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ml.data.dataset import Dataset
from ml.models.base import Model
from ml.models.rl import REWARD_HORIZONS, check_reward_horizon
from ml.models.trainer import pick_device

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm

    from ml.models.rl_env import PortfolioEnv

ALGORITHMS = ("dqn", "ppo", "a2c")


class SymbolScorer(nn.Module):
    """One score per symbol from its block of a PortfolioEnv observation (the same MLP for every
    symbol) and, with `cash`, one for cash: a learned bias plus a bonus times the cash weight."""

    def __init__(self, n_symbols: int, observation_size: int, hidden: list[int],
                 cash: bool = True) -> None:  # fmt: skip
        super().__init__()
        self.n_symbols = n_symbols
        self.block = (observation_size - 1) // n_symbols  # features, present flag, weight
        if n_symbols * self.block + 1 != observation_size or self.block < 3:
            raise ValueError(f"an observation of {observation_size} values is not a book of "
                             f"{n_symbols} symbols")  # fmt: skip
        layers: list[nn.Module] = []
        width = self.block
        for h in hidden:
            layers += [nn.Linear(width, h), nn.Tanh()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)
        self.cash = nn.Parameter(torch.zeros(2)) if cash else None

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        blocks = observation[:, :-1].reshape(-1, self.n_symbols, self.block)
        scores: torch.Tensor = self.mlp(blocks).squeeze(-1)
        if self.cash is None:
            return scores
        cash = self.cash[0] + self.cash[1] * observation[:, -1:]
        return torch.cat([scores, cash], dim=1)

    def score(self, features: torch.Tensor) -> torch.Tensor:
        """The score of rows of processed features, each for a symbol present today that the
        book does not hold."""
        present = torch.ones(len(features), 1, dtype=features.dtype, device=features.device)
        inputs = torch.cat([features, present, torch.zeros_like(present)], dim=1)
        score: torch.Tensor = self.mlp(inputs).squeeze(-1)
        return score


class SB3Trader(Model):
    """A stable-baselines3 agent (`algorithm`: dqn | ppo | a2c) trading a PortfolioEnv."""

    name = "rl_sb3"
    wants_gpu = True

    def __init__(self, seed: int = 0, algorithm: str = "dqn", timesteps: int = 20_000,
                 hidden: list[int] | None = None, learning_rate: float | None = None,
                 gamma: float = 0.9, actions: str | None = None, cost_bps: float = 10.0,
                 buy_cost_bps: float | None = None, sell_cost_bps: float | None = None,
                 reward: str = "trade_ret_1d", episode_days: int | None = None,
                 reward_scale: float = 100.0, risk_aversion: float = 0.0,
                 eval_every: int = 1_000, patience: int = 5,
                 algo_kwargs: dict[str, Any] | None = None, device: str = "auto") -> None:  # fmt: skip
        if reward not in REWARD_HORIZONS:
            raise ValueError(f"reward must be one of {sorted(REWARD_HORIZONS)}, got {reward!r}")
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
        actions = actions or ("discrete" if algorithm == "dqn" else "long_only")
        if (algorithm == "dqn") != (actions == "discrete"):
            raise ValueError(f"{algorithm} cannot take {actions!r} actions: DQN takes discrete "
                             "ones, PPO and A2C long_only or long_short weights")  # fmt: skip
        super().__init__(seed=seed, algorithm=algorithm, timesteps=timesteps,
                         hidden=list(hidden or [16]), learning_rate=learning_rate, gamma=gamma,
                         actions=actions, cost_bps=cost_bps, buy_cost_bps=buy_cost_bps,
                         sell_cost_bps=sell_cost_bps, reward=reward, episode_days=episode_days,
                         reward_scale=reward_scale, risk_aversion=risk_aversion,
                         eval_every=eval_every, patience=patience,
                         algo_kwargs=dict(algo_kwargs or {}), device=device)  # fmt: skip
        self.scorer: SymbolScorer | None = None
        self.history: list[dict[str, float]] = []
        self._agent: BaseAlgorithm | None = None
        self._agent_zip: bytes | None = None

    def env_options(self) -> dict[str, Any]:
        """The PortfolioEnv options of this trader (actions, reward, costs, reward shaping)."""
        o = self.kwargs
        return {
            "actions": o["actions"],
            "reward": o["reward"],
            "buy_bps": o["cost_bps"] if o["buy_cost_bps"] is None else o["buy_cost_bps"],
            "sell_bps": o["cost_bps"] if o["sell_cost_bps"] is None else o["sell_cost_bps"],
            "reward_scale": o["reward_scale"],
            "risk_aversion": o["risk_aversion"],
        }

    def environment(self, dataset: Dataset, segment: str) -> PortfolioEnv:
        """This trader's environment over `segment`: the whole window, from its first day."""
        from ml.models.rl_env import PortfolioEnv

        return PortfolioEnv(dataset, segment, **self.env_options())

    def fit(self, dataset: Dataset) -> SB3Trader:
        from ml.models.rl_env import PortfolioEnv
        from ml.models.rl_policies import KeepBestOnValid, make_agent, symbol_scorer

        o = self.kwargs
        check_reward_horizon(dataset, o["reward"])
        device = pick_device(o["device"], self.runtime.device)
        train = PortfolioEnv(dataset, "train", episode_days=o["episode_days"],
                             **self.env_options())  # fmt: skip
        has_valid = len(dataset.segments.get("valid", ())) > 0
        valid = self.environment(dataset, "valid") if has_valid else None
        self.history = []
        with _torch_threads(1 if device == "cpu" else None):
            agent = make_agent(
                o["algorithm"], train, seed=self.seed, device=device, hidden=o["hidden"],
                learning_rate=o["learning_rate"], gamma=o["gamma"],
                timesteps=int(o["timesteps"]), options=o["algo_kwargs"],
            )  # fmt: skip
            callback = KeepBestOnValid(valid, int(o["eval_every"]), int(o["patience"]),
                                       self.history)  # fmt: skip
            agent.learn(total_timesteps=int(o["timesteps"]), callback=callback)
        # Trained: DQN's replay buffer (up to ~1 GiB of observations) is not needed to act or to
        # save, and a walk-forward keeps a fitted trader per fold.
        for buffer in ("replay_buffer", "rollout_buffer"):
            if getattr(agent, buffer, None) is not None:
                setattr(agent, buffer, None)
        self._agent, self._agent_zip = agent, None
        self.scorer = copy.deepcopy(symbol_scorer(agent)).to("cpu").eval()
        return self

    @property
    def agent(self) -> BaseAlgorithm:
        """The trained SB3 agent (loaded back from its saved bytes after unpickling)."""
        if self._agent is None:
            if self._agent_zip is None:
                raise RuntimeError("fit the trader before asking for its agent")
            from ml.models.rl_policies import load_agent

            self._agent = load_agent(self.kwargs["algorithm"], self._agent_zip)
        return self._agent

    def greedy_book(self, dataset: Dataset, segment: str = "test") -> pd.DataFrame:
        """The greedy (deterministic) policy trading `segment`: per day, the book's net and
        gross return, cost and turnover (ml.models.rl_env.rollout)."""
        from ml.models.rl_env import rollout

        agent = self.agent
        return rollout(self.environment(dataset, segment),
                       lambda observation: agent.predict(observation, deterministic=True)[0])  # fmt: skip

    def predict_rows(self, X_all: np.ndarray, rows: np.ndarray) -> np.ndarray:
        if self.scorer is None:
            raise RuntimeError("fit the trader before scoring")
        features = np.nan_to_num(np.asarray(X_all)[rows].astype(np.float32))
        with torch.no_grad():
            scores = self.scorer.score(torch.as_tensor(features))
        return np.asarray(scores.numpy(), dtype=np.float64)

    def __getstate__(self) -> dict[str, Any]:
        # The live agent holds torch optimizers and buffers: it travels as SB3's own save.
        state = self.__dict__.copy()
        agent = state.pop("_agent", None)
        if agent is not None:
            buffer = io.BytesIO()
            agent.save(buffer)
            state["_agent_zip"] = buffer.getvalue()
        state["_agent"] = None
        return state


class DQNTrader(SB3Trader):
    """SB3's DQN holding one symbol or cash a day."""

    name = "rl_dqn"

    def __init__(self, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(seed=seed, algorithm="dqn", **kwargs)


class PPOTrader(SB3Trader):
    """SB3's PPO setting target weights (softmax, long-only unless `actions: long_short`)."""

    name = "rl_ppo"

    def __init__(self, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(seed=seed, algorithm="ppo", **kwargs)


@contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """torch on `n` threads inside the block (None: unchanged). The agents' networks are tiny:
    one thread is no slower and gives the same floats on any machine."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


__all__ = ["ALGORITHMS", "DQNTrader", "PPOTrader", "SB3Trader", "SymbolScorer"]
