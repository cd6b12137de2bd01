"""Neural models: an MLP, an LSTM with temporal attention and multi-horizon heads, and an
encoder-decoder Transformer forecasting the next days' returns step by step (teacher forcing).

The `nn.Module`s are separate from their wrappers; the wrappers turn a Dataset into
SequenceWindows, scale the targets by the training labels' spread and hand both to
ml.models.trainer.Trainer. Labels that are NaN (a horizon beyond the loaded data) are masked out of
the loss.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np
import torch
from torch import nn

from ml.data.dataset import Dataset
from ml.data.windows import SequenceWindows
from ml.models.base import Model, train_and_valid
from ml.models.trainer import Trainer, TrainerConfig, predict, seed_everything

TRAINER_KEYS = {f.name for f in fields(TrainerConfig)}


def masked_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    mask = torch.isfinite(target)
    diff = torch.where(mask, pred.float() - torch.nan_to_num(target.float()), 0.0)
    return (diff**2).sum() / mask.sum().clamp(min=1)


class MLPNet(nn.Module):
    def __init__(self, n_features: int, hidden: list[int], dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.GELU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score: torch.Tensor = self.net(x[:, -1, :]).squeeze(-1)
        return score

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return masked_mse(self(x), y[:, 0])


class LSTMAttentionNet(nn.Module):
    """Stacked LSTM; attention over its time steps pools the sequence; one head per horizon.
    `forward` returns the first head (the label the model is selected on)."""

    def __init__(self, n_features: int, hidden: int, layers: int, dropout: float,
                 n_heads: int) -> None:  # fmt: skip
        super().__init__()
        self.lstm = nn.LSTM(
            n_features, hidden, num_layers=layers, batch_first=True,
            dropout=dropout if layers > 1 else 0.0,
        )  # fmt: skip
        self.attention = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.Linear(2 * hidden, n_heads)

    def all_heads(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)  # (B, L, H)
        weights = torch.softmax(self.attention(out).squeeze(-1), dim=1)  # (B, L)
        context = torch.einsum("bl,blh->bh", weights, out)
        heads: torch.Tensor = self.heads(self.dropout(torch.cat([context, out[:, -1]], dim=-1)))
        return heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.all_heads(x)[:, 0]

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return masked_mse(self.all_heads(x), y)


class Seq2SeqTransformer(nn.Module):
    """Encoder over the look-back window; decoder emits the next `steps` daily returns. Trained
    with teacher forcing (the true previous step as decoder input, causal mask); at inference
    it decodes its own outputs. The score is the sum of the forecast steps."""

    def __init__(self, n_features: int, d_model: int, nhead: int, layers: int,
                 dropout: float, steps: int, lookback: int) -> None:  # fmt: skip
        super().__init__()
        self.steps = steps
        self.embed = nn.Linear(n_features, d_model)
        self.target_embed = nn.Linear(1, d_model)
        self.pos = nn.Parameter(torch.zeros(1, lookback + steps, d_model))
        nn.init.normal_(self.pos, std=0.02)
        self.transformer = nn.Transformer(
            d_model=d_model, nhead=nhead, num_encoder_layers=layers,
            num_decoder_layers=layers, dim_feedforward=2 * d_model, dropout=dropout,
            batch_first=True,
        )  # fmt: skip
        self.out = nn.Linear(d_model, 1)
        self.start: torch.Tensor
        self.causal: torch.Tensor
        self.register_buffer("start", torch.zeros(1, 1, 1))
        self.register_buffer("causal", nn.Transformer.generate_square_subsequent_mask(steps))

    def _decode(self, memory: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        n = previous.shape[1]
        tgt = self.target_embed(previous) + self.pos[:, -self.steps :][:, :n]
        mask = self.causal[:n, :n]
        out = self.transformer.decoder(tgt, memory, tgt_mask=mask, tgt_is_causal=True)
        step: torch.Tensor = self.out(out).squeeze(-1)
        return step

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        src = self.embed(x) + self.pos[:, : x.shape[1]]
        memory: torch.Tensor = self.transformer.encoder(src)
        return memory

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        memory = self._encode(x)
        previous = self.start.expand(x.shape[0], 1, 1)
        for _ in range(self.steps):
            step = self._decode(memory, previous)[:, -1:]
            previous = torch.cat([previous, step.unsqueeze(-1)], dim=1)
        return previous[:, 1:, 0].sum(dim=1)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # Teacher forcing: the decoder sees the true step k-1 when predicting step k.
        memory = self._encode(x)
        start = self.start.expand(x.shape[0], 1, 1)
        truth = torch.nan_to_num(y[:, : self.steps - 1]).unsqueeze(-1).to(x.dtype)
        pred = self._decode(memory, torch.cat([start, truth], dim=1))
        return masked_mse(pred, y[:, : self.steps])


class NeuralModel(Model):
    """Common wrapper: trainer options from kwargs; targets scaled by the train labels' std."""

    wants_gpu = True
    checkpoints = True

    def __init__(self, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(seed=seed, **kwargs)
        self.trainer_config = TrainerConfig(
            **{k: v for k, v in kwargs.items() if k in TRAINER_KEYS}
        )
        self.options = {k: v for k, v in kwargs.items() if k not in TRAINER_KEYS}
        self.module: Any = None
        self.scale = 1.0
        self.history: list[dict[str, float]] = []

    def build(self, n_features: int) -> Any:
        raise NotImplementedError

    def targets(self, dataset: Dataset) -> np.ndarray:
        """(N, K) training targets for every panel row; column 0 is the model's label."""
        return dataset.panel.frame[[dataset.label]].to_numpy(np.float32)

    def fit(self, dataset: Dataset) -> NeuralModel:
        train_rows, valid_rows = train_and_valid(dataset)
        targets = self.targets(dataset)
        scale = float(np.nanstd(targets[train_rows, 0]))
        self.scale = scale if scale > 0 else 1.0
        y = targets / self.scale
        seed_everything(self.seed)
        self.module = self.build(dataset.X_all.shape[1])
        trainer = Trainer(self.trainer_config, seed=self.seed, runtime=self.runtime)
        train = SequenceWindows(dataset.X_all, y, train_rows, self.lookback)
        valid = (
            SequenceWindows(dataset.X_all, y, valid_rows, self.lookback)
            if len(valid_rows)
            else None
        )
        trainer.fit(self.module, train, valid)
        self.history = trainer.history
        return self

    def predict_rows(self, X_all: np.ndarray, rows: np.ndarray) -> np.ndarray:
        windows = SequenceWindows(X_all, np.zeros(len(X_all), np.float32), rows, self.lookback)
        return predict(self.module, windows) * self.scale


class MLPModel(NeuralModel):
    name = "mlp"

    def __init__(self, seed: int = 0, hidden: list[int] | None = None, dropout: float = 0.1,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(seed=seed, hidden=hidden or [64, 32], dropout=dropout, **kwargs)

    def build(self, n_features: int) -> Any:
        return MLPNet(n_features, list(self.options["hidden"]), self.options["dropout"])


class LSTMAttentionModel(NeuralModel):
    """LSTM + temporal attention; one head per horizon (`label` first, then `aux_labels`)."""

    name = "lstm_attention"

    def __init__(self, seed: int = 0, lookback: int = 20, hidden: int = 32, layers: int = 2,
                 dropout: float = 0.1, aux_labels: list[str] | None = None,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(seed=seed, lookback=lookback, hidden=hidden, layers=layers,
                         dropout=dropout, aux_labels=aux_labels or ["fwd_ret_1d"], **kwargs)  # fmt: skip
        self.lookback = int(lookback)
        self.n_heads = 1 + len(self.options["aux_labels"])

    def targets(self, dataset: Dataset) -> np.ndarray:
        frame = dataset.panel.frame
        extra = [c for c in self.options["aux_labels"] if c in frame.columns and c != dataset.label]
        self.n_heads = 1 + len(extra)
        return frame[[dataset.label, *extra]].to_numpy(np.float32)

    def build(self, n_features: int) -> Any:
        o = self.options
        return LSTMAttentionNet(n_features, o["hidden"], o["layers"], o["dropout"], self.n_heads)


class TransformerModel(NeuralModel):
    """Encoder-decoder over the look-back window, forecasting the next `steps` daily returns."""

    name = "transformer"

    def __init__(self, seed: int = 0, lookback: int = 20, d_model: int = 32, nhead: int = 4,
                 layers: int = 1, dropout: float = 0.1, steps: int = 5,
                 step_label: str = "fwd_ret_1d", **kwargs: Any) -> None:  # fmt: skip
        super().__init__(seed=seed, lookback=lookback, d_model=d_model, nhead=nhead,
                         layers=layers, dropout=dropout, steps=steps, step_label=step_label,
                         **kwargs)  # fmt: skip
        self.lookback = int(lookback)

    def targets(self, dataset: Dataset) -> np.ndarray:
        """Row t's targets: the symbol's one-day returns of days t+1 .. t+steps."""
        panel = dataset.panel
        steps = int(self.options["steps"])
        if steps > panel.horizon:
            raise ValueError(f"{steps} forecast steps reach past the label horizon {panel.horizon}")
        one_day = panel.frame[self.options["step_label"]].to_numpy(np.float32)
        n = len(one_day)
        out = np.full((n, steps), np.nan, dtype=np.float32)
        for k in range(steps):
            src = np.arange(n) + k
            ok = src < n
            same = np.zeros(n, dtype=bool)
            same[ok] = panel.seq_start[src[ok]] == panel.seq_start[ok]
            out[same, k] = one_day[src[same]]
        return out

    def fit(self, dataset: Dataset) -> TransformerModel:
        super().fit(dataset)
        return self

    def build(self, n_features: int) -> Any:
        o = self.options
        return Seq2SeqTransformer(
            n_features, o["d_model"], o["nhead"], o["layers"], o["dropout"], int(o["steps"]),
            self.lookback,
        )  # fmt: skip
