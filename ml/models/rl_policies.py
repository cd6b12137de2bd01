"""The stable-baselines3 side of ml/models/rl_sb3.py: DQN and actor-critic policies built on the
shared per-symbol scorer, the callback that keeps the policy that trades the validation window
best after costs, a logger output that keeps SB3's metrics in memory, and agent factories."""

from __future__ import annotations

import copy
import io
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import KVWriter, Logger
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, MlpExtractor
from stable_baselines3.common.type_aliases import Schedule
from stable_baselines3.common.utils import get_device
from stable_baselines3.dqn.policies import DQNPolicy, QNetwork
from torch import nn

from ml.models.rl_env import PortfolioEnv, rollout
from ml.models.rl_sb3 import SymbolScorer

ALGORITHM_CLASSES: dict[str, type[BaseAlgorithm]] = {"dqn": DQN, "ppo": PPO, "a2c": A2C}


class SymbolQNetwork(QNetwork):
    """Q(s, hold symbol i) from symbol i's block of the observation (one network for every
    symbol), Q(s, cash) from the cash weight: a SymbolScorer in place of SB3's MLP."""

    def __init__(
        self,
        observation_space: spaces.Space[Any],
        action_space: spaces.Discrete,
        features_extractor: BaseFeaturesExtractor,
        features_dim: int,
        net_arch: list[int] | None = None,
        activation_fn: type[nn.Module] = nn.Tanh,
        normalize_images: bool = True,
    ) -> None:
        super().__init__(observation_space, action_space, features_extractor, features_dim, [],
                         activation_fn, normalize_images)  # fmt: skip
        self.net_arch = list(net_arch or [16])
        scorer = SymbolScorer(int(action_space.n) - 1, features_dim, self.net_arch, cash=True)
        self.q_net = nn.Sequential(scorer)


class SymbolDQNPolicy(DQNPolicy):
    """SB3's DQN policy with SymbolQNetwork as its online and target networks."""

    def make_q_net(self) -> QNetwork:
        net_args = self._update_features_extractor(self.net_args, features_extractor=None)
        return SymbolQNetwork(**net_args).to(self.device)


class SymbolExtractor(MlpExtractor):
    """The actor's latent is the action logits themselves (a SymbolScorer); the critic is an MLP
    of the whole observation."""

    def __init__(self, feature_dim: int, n_symbols: int, cash: bool, hidden: list[int],
                 activation_fn: type[nn.Module], device: Any) -> None:  # fmt: skip
        super().__init__(feature_dim, {"pi": [], "vf": hidden}, activation_fn, device)
        scorer = SymbolScorer(n_symbols, feature_dim, hidden, cash)
        self.policy_net = nn.Sequential(scorer).to(get_device(device))
        self.latent_dim_pi = n_symbols + int(cash)

    @property
    def scorer(self) -> SymbolScorer:
        scorer = self.policy_net[0]
        if not isinstance(scorer, SymbolScorer):
            raise TypeError(f"the actor is a {type(scorer).__name__}, not a SymbolScorer")
        return scorer


class SymbolActorCriticPolicy(ActorCriticPolicy):
    """SB3's actor-critic policy whose action means are the SymbolScorer's logits (one per
    symbol, and one for cash when the action has it)."""

    def __init__(self, observation_space: spaces.Space[Any], action_space: spaces.Space[Any],
                 lr_schedule: Schedule, n_symbols: int = 1, **kwargs: Any) -> None:  # fmt: skip
        self.n_symbols = n_symbols
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _hidden(self) -> list[int]:
        arch = self.net_arch
        return list(arch.get("pi", []) if isinstance(arch, dict) else arch)

    def _build_mlp_extractor(self) -> None:
        width = int(np.prod(self.action_space.shape or (0,)))
        self.mlp_extractor = SymbolExtractor(
            self.features_dim, self.n_symbols, width == self.n_symbols + 1, self._hidden(),
            self.activation_fn, self.device,
        )  # fmt: skip

    def _build(self, lr_schedule: Schedule) -> None:
        super()._build(lr_schedule)
        # The scorer's outputs are the means: no linear layer after them. Small initial logits
        # (SB3's gain for its action layer) start the policy near equal weights.
        self.action_net = nn.Identity()
        if self.ortho_init and isinstance(self.mlp_extractor, SymbolExtractor):
            self.init_weights(self.mlp_extractor.scorer.mlp[-1], gain=0.01)
        self.optimizer = self.optimizer_class(  # type: ignore[call-arg]
            self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "n_symbols": self.n_symbols}


class LatestValues(KVWriter):
    """An SB3 logger output that keeps the last value of each metric in memory (no file, no
    stdout)."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]],
              step: int = 0) -> None:  # fmt: skip
        for key, value in key_values.items():
            # time/*: wall-clock figures, which would make two equal fits' histories differ.
            if isinstance(value, int | float | np.number) and not key.startswith("time/"):
                self.values[key] = float(value)

    def close(self) -> None:
        pass


class KeepBestOnValid(BaseCallback):
    """Every `every` steps the greedy policy trades `valid` (mean daily return after costs);
    the best policy is restored when training ends, which it does early after `patience`
    evaluations without a better one. Without `valid` the last policy stays. Each evaluation,
    with the last metrics SB3 logged, is appended to `history`."""

    def __init__(self, valid: PortfolioEnv | None, every: int, patience: int,
                 history: list[dict[str, float]]) -> None:  # fmt: skip
        super().__init__()
        self.valid, self.every, self.patience, self.history = (
            valid,
            max(1, every),
            patience,
            history,
        )
        self.best = -np.inf
        self.best_state: dict[str, Any] | None = None
        self.stale = 0

    def _on_step(self) -> bool:
        if self.n_calls % self.every:
            return True
        return self._evaluate()

    def _on_training_end(self) -> None:
        if self.n_calls % self.every:
            self._evaluate()
        if self.best_state is not None:
            self.model.policy.load_state_dict(self.best_state)

    def _evaluate(self) -> bool:
        row = {"timesteps": float(self.num_timesteps)}
        for writer in self.logger.output_formats:
            if isinstance(writer, LatestValues):
                row |= writer.values
        if self.valid is None:
            self.history.append(row)
            return True
        model = self.model
        book = rollout(self.valid, lambda obs: model.predict(obs, deterministic=True)[0])
        score = float(book["net_return"].mean())
        row |= {"valid_return": score, "valid_turnover": float(book["turnover"].mean())}
        self.history.append(row)
        if score > self.best:
            self.best, self.stale = score, 0
            self.best_state = copy.deepcopy(model.policy.state_dict())
            return True
        self.stale += 1
        return self.stale <= self.patience


# Defaults for short runs on a few thousand days; `options` (the config's algo_kwargs) win.
def _defaults(algorithm: str, timesteps: int, observation_size: int) -> dict[str, Any]:
    if algorithm == "dqn":
        # The replay buffer keeps two float32 observations a step: at most about 1 GiB of them
        # (a 500-symbol universe with 140 features observes 71,000 values a day).
        fits = 2**30 // (8 * observation_size)
        return {
            "learning_rate": 1e-3,
            "buffer_size": max(1_000, min(timesteps, 100_000, fits)),
            "learning_starts": min(1_000, timesteps // 10),
            "batch_size": 64,
            "target_update_interval": 250,
            "exploration_fraction": 0.3,
            "exploration_final_eps": 0.02,
        }
    if algorithm == "ppo":
        return {"learning_rate": 3e-4, "n_steps": 256, "batch_size": 64, "n_epochs": 5}
    return {"learning_rate": 7e-4, "n_steps": 16}


def make_agent(algorithm: str, env: PortfolioEnv, *, seed: int, device: str, hidden: list[int],
               learning_rate: float | None, gamma: float, timesteps: int,
               options: dict[str, Any]) -> BaseAlgorithm:  # fmt: skip
    """An SB3 agent with the symbol-scoring policy for `env`, seeded, logging to memory only."""
    size = int(np.prod(env.observation_space.shape or (1,)))
    settings = _defaults(algorithm, timesteps, size) | {"gamma": gamma} | dict(options)
    if learning_rate is not None:
        settings["learning_rate"] = learning_rate
    policy_kwargs = dict(settings.pop("policy_kwargs", {})) | {"net_arch": list(hidden)}
    if algorithm == "dqn":
        policy: type[Any] = SymbolDQNPolicy
    else:
        policy = SymbolActorCriticPolicy
        policy_kwargs["n_symbols"] = len(env.symbols)
    agent = ALGORITHM_CLASSES[algorithm](policy, env, seed=seed, device=device, verbose=0,
                                         policy_kwargs=policy_kwargs, **settings)  # fmt: skip
    agent.set_logger(Logger(folder=None, output_formats=[LatestValues()]))
    return agent


def symbol_scorer(agent: BaseAlgorithm) -> SymbolScorer:
    """The per-symbol scorer inside `agent`'s policy (DQN's online network, or the actor)."""
    policy: Any = agent.policy
    scorer = policy.q_net.q_net[0] if isinstance(policy, DQNPolicy) else (
        policy.mlp_extractor.policy_net[0])  # fmt: skip
    if not isinstance(scorer, SymbolScorer):
        raise TypeError(f"{type(policy).__name__} has no SymbolScorer")
    return scorer


def load_agent(algorithm: str, data: bytes, device: str = "cpu") -> BaseAlgorithm:
    """An agent from the bytes of its `save()`."""
    return ALGORITHM_CLASSES[algorithm].load(io.BytesIO(data), device=device)


__all__ = ["KeepBestOnValid", "LatestValues", "SymbolActorCriticPolicy", "SymbolDQNPolicy",
           "SymbolQNetwork", "load_agent", "make_agent", "symbol_scorer"]  # fmt: skip
