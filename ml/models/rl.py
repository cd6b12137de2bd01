"""A reinforcement-learning trader: a policy-gradient agent that holds one symbol (or cash)
each day and learns from the return it actually makes after trading costs.

Environment (built from a Dataset's training rows, one step per trading day):
- state: the processed features of every symbol in the universe that day, and what the agent
  holds from the day before;
- action: which symbol to hold next, or cash;
- reward: the tradeable next-day return of the held symbol (`trade_ret_1d`: decide at the
  close of t, buy at the next close, sell one day later; 0 in cash) minus `cost_bps` for each
  side traded (a switch between symbols pays twice).

Policy: softmax over one logit per symbol, from an MLP of its features (the same network for
every symbol, so the universe can change), a learned bonus for keeping the current holding
(turnover costs money), and a fixed logit of 0 for cash. Training: REINFORCE over episodes of
consecutive days drawn from the training window, discounted returns, a per-batch baseline and
an entropy bonus; after each epoch the greedy policy (argmax) trades the validation window
after costs and the best epoch is kept.

Scores: the policy's per-symbol logit, so the trader ranks symbols like every model of the zoo
and goes through the same walk-forward metrics and backtest.

No look-ahead: the reward of day t is realised two rows later, so training needs a gap between
segments of at least two rows (the walk-forward's label horizon); `fit` refuses less.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ml.data.dataset import Dataset
from ml.models.base import Model
from ml.models.trainer import pick_device, seed_everything

# Rows after t at which each usable reward is known.
REWARD_HORIZONS = {"trade_ret_1d": 2, "fwd_ret_1d": 1}


def check_reward_horizon(dataset: Dataset, reward: str) -> None:
    """Refuse to train on `reward` when the dataset lacks it, or when its segments are purged for
    a label known sooner than the reward (the last train rewards would overlap `valid`)."""
    if reward not in REWARD_HORIZONS:
        raise ValueError(f"reward must be one of {sorted(REWARD_HORIZONS)}, got {reward!r}")
    needed = REWARD_HORIZONS[reward]
    if dataset.panel.horizon < needed:
        raise ValueError(
            f"the reward {reward} is known {needed} rows after the decision, but the "
            f"segments are purged for a {dataset.panel.horizon}-row label: train on a label "
            f"with a horizon of at least {needed} rows"
        )
    if reward not in dataset.panel.frame.columns:
        raise ValueError(f"the panel has no {reward} column (load it with the labels)")


class PolicyNet(nn.Module):
    """One logit per symbol from its features (the same MLP for every symbol), and a learned
    bonus for keeping the current holding."""

    def __init__(self, n_features: int, hidden: list[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.Tanh()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.scorer = nn.Sequential(*layers)
        self.keep_bonus = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.scorer(x).squeeze(-1)
        return logits


class PolicyGradientTrader(Model):
    name = "rl_trader"
    wants_gpu = True

    def __init__(self, seed: int = 0, hidden: list[int] | None = None, epochs: int = 10,
                 episodes: int = 16, episode_days: int = 40, lr: float = 0.01,
                 gamma: float = 0.9, entropy: float = 0.01, cost_bps: float = 10.0,
                 reward: str = "trade_ret_1d", device: str = "auto") -> None:  # fmt: skip
        super().__init__(seed=seed, hidden=list(hidden or [16]), epochs=epochs, episodes=episodes,
                         episode_days=episode_days, lr=lr, gamma=gamma, entropy=entropy,
                         cost_bps=cost_bps, reward=reward, device=device)  # fmt: skip
        if reward not in REWARD_HORIZONS:
            raise ValueError(f"reward must be one of {sorted(REWARD_HORIZONS)}, got {reward!r}")
        self.module: Any = None
        self.history: list[dict[str, float]] = []

    # --- the environment -------------------------------------------------------------------

    def _days(self, dataset: Dataset, segment: str) -> list[tuple[np.ndarray, np.ndarray]]:
        """(rows, symbol codes) of each day of `segment` with a known reward, in date order."""
        rows = dataset.rows(segment)
        frame = dataset.panel.frame
        reward = frame[self.kwargs["reward"]].to_numpy(np.float64)[rows]
        rows = rows[np.isfinite(reward)]
        dates = dataset.panel.dates[rows]
        codes = self._codes[rows]
        order = np.lexsort((codes, dates))
        rows, dates, codes = rows[order], dates[order], codes[order]
        cuts = np.flatnonzero(dates[1:] != dates[:-1]) + 1
        return list(zip(np.split(rows, cuts), np.split(codes, cuts), strict=True))

    def _cost(self, before: int, after: int) -> float:
        """Cost of moving from holding `before` to `after` (-1 = cash), as a return."""
        if before == after:
            return 0.0
        sides = (before != -1) + (after != -1)
        return float(sides * self.kwargs["cost_bps"] * 1e-4)

    def _step_logits(self, x: Any, codes: np.ndarray, holding: int) -> Any:
        """Logits of [symbol_1 .. symbol_n, cash] given today's features and the holding."""
        logits = self.module(x)
        keep = torch.zeros(len(codes) + 1, device=x.device)
        held = np.flatnonzero(codes == holding) if holding != -1 else np.array([len(codes)])
        if len(held):  # a holding that left the universe today earns no bonus
            keep[int(held[0])] = 1.0
        return torch.cat([logits, torch.zeros(1, device=x.device)]) + keep * self.module.keep_bonus

    def _greedy_return(
        self, days: list[tuple[np.ndarray, np.ndarray]], X: Any, R: np.ndarray
    ) -> float:
        """Mean daily after-cost return of the argmax policy over `days`."""
        holding, total = -1, 0.0
        with torch.no_grad():
            for rows, codes in days:
                action = int(self._step_logits(X[rows], codes, holding).argmax())
                after = int(codes[action]) if action < len(codes) else -1
                total += (R[rows[action]] if action < len(codes) else 0.0) - self._cost(
                    holding, after
                )
                holding = after
        return total / max(len(days), 1)

    def greedy_holdings(self, dataset: Dataset, segment: str = "test") -> list[str | None]:
        """The symbol the argmax policy holds after each day of `segment` (None: cash)."""
        self._codes = dataset.panel.frame["symbol"].factorize()[0]
        symbols = dataset.panel.frame["symbol"].to_numpy()
        X = torch.as_tensor(dataset.X_all, dtype=torch.float32)
        holding, held = -1, []
        with torch.no_grad():
            for rows, codes in self._days(dataset, segment):
                action = int(self._step_logits(X[rows], codes, holding).argmax())
                holding = int(codes[action]) if action < len(codes) else -1
                held.append(str(symbols[rows[action]]) if action < len(codes) else None)
        return held

    # --- Model -----------------------------------------------------------------------------

    def fit(self, dataset: Dataset) -> PolicyGradientTrader:
        from tqdm.auto import tqdm

        o = self.kwargs
        check_reward_horizon(dataset, o["reward"])
        seed_everything(self.seed)
        rng = np.random.default_rng(self.seed)
        device = pick_device(o["device"], self.runtime.device)
        self._codes = dataset.panel.frame["symbol"].factorize()[0]
        train = self._days(dataset, "train")
        valid = self._days(dataset, "valid") if "valid" in dataset.segments else []
        if len(train) < 2:
            raise ValueError("the training window has fewer than two days with a known reward")
        X = torch.as_tensor(dataset.X_all, dtype=torch.float32, device=device)
        R = dataset.panel.frame[o["reward"]].to_numpy(np.float64)
        self.module = PolicyNet(X.shape[1], o["hidden"]).to(device)
        optimizer = torch.optim.Adam(self.module.parameters(), lr=o["lr"])
        length = min(int(o["episode_days"]), len(train))
        best, best_state = -np.inf, None
        self.history = []

        bar = tqdm(range(int(o["epochs"])), desc="rl_trader", disable=not self.runtime.progress)
        for epoch in bar:
            losses, rewards = [], []
            for _ in range(int(o["episodes"])):
                start = int(rng.integers(0, len(train) - length + 1))
                log_probs, entropies, step_rewards = [], [], []
                holding = -1
                for rows, codes in train[start : start + length]:
                    # torch.distributions is untyped.
                    dist: Any = torch.distributions.Categorical(
                        logits=self._step_logits(X[rows], codes, holding)
                    )
                    action = dist.sample()
                    a = int(action)
                    after = int(codes[a]) if a < len(codes) else -1
                    earned = (R[rows[a]] if a < len(codes) else 0.0) - self._cost(holding, after)
                    holding = after
                    log_probs.append(dist.log_prob(action))
                    entropies.append(dist.entropy())
                    step_rewards.append(earned)
                returns = np.zeros(len(step_rewards))
                running = 0.0
                for t in range(len(step_rewards) - 1, -1, -1):
                    running = step_rewards[t] + o["gamma"] * running
                    returns[t] = running
                advantage = torch.as_tensor(
                    (returns - returns.mean()) / (returns.std() + 1e-8),
                    dtype=torch.float32, device=device,
                )  # fmt: skip
                loss = -(torch.stack(log_probs) * advantage).mean()
                loss = loss - o["entropy"] * torch.stack(entropies).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
                rewards.append(float(np.mean(step_rewards)))
            score = float(self._greedy_return(valid, X, R) if valid else np.mean(rewards))
            self.history.append(
                {"epoch": epoch, "loss": float(np.mean(losses)),
                 "train_reward": float(np.mean(rewards)), "valid_reward": score}
            )  # fmt: skip
            bar.set_postfix(reward=f"{np.mean(rewards):.5f}", valid=f"{score:.5f}")
            if score > best:
                best = score
                best_state = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
        if best_state is not None:
            self.module.load_state_dict(best_state)
        self.module.eval()
        self.module.to("cpu")
        return self

    def __getstate__(self) -> dict[str, Any]:
        # The symbol codes are a per-fit cache of the whole panel's size: not part of the model.
        state = self.__dict__.copy()
        state.pop("_codes", None)
        return state

    def predict_rows(self, X_all: np.ndarray, rows: np.ndarray) -> np.ndarray:
        if self.module is None:
            raise RuntimeError("fit the trader before scoring")
        with torch.no_grad():
            x = torch.as_tensor(np.asarray(X_all)[rows], dtype=torch.float32)
            return np.asarray(self.module(x).numpy(), dtype=np.float64)


__all__ = ["REWARD_HORIZONS", "PolicyGradientTrader", "check_reward_horizon"]
