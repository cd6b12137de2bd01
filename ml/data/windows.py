"""Sequence windows for the torch models: a sample is a row index of one feature tensor."""

from __future__ import annotations

from typing import Any

import numpy as np


class SequenceWindows:
    """Samples `rows` of one feature tensor as windows of the last `lookback` rows per symbol.

    Nothing is copied per sample: `__getitem__` returns a view `X[i - L + 1 : i + 1]`, and a batch
    is one gather `X[rows[:, None] + offsets]`. Rows need `lookback - 1` rows of history in their
    symbol (Panel.samples' `min_history`). Works with `torch.utils.data.DataLoader` (batched
    through `__getitems__`) and with the trainer's own batching.
    """

    def __init__(self, X: Any, y: Any, rows: Any, lookback: int) -> None:
        import torch

        self.X = torch.as_tensor(X)
        self.y = torch.as_tensor(y)
        self.rows = torch.as_tensor(np.asarray(rows), dtype=torch.long)
        self.lookback = int(lookback)
        self.offsets = torch.arange(-self.lookback + 1, 1, dtype=torch.long)

    def to(self, device: Any) -> SequenceWindows:
        out = SequenceWindows.__new__(SequenceWindows)
        out.X, out.y = self.X.to(device), self.y.to(device)
        out.rows, out.offsets = self.rows.to(device), self.offsets.to(device)
        out.lookback = self.lookback
        return out

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        row = int(self.rows[i])
        return self.X[row - self.lookback + 1 : row + 1], self.y[row]

    def __getitems__(self, items: list[int]) -> tuple[Any, Any]:
        import torch

        return self.batch(torch.as_tensor(items, dtype=torch.long, device=self.rows.device))

    def batch(self, positions: Any) -> tuple[Any, Any]:
        rows = self.rows[positions]
        return self.X[rows[:, None] + self.offsets], self.y[rows]


def collate_batch(batch: Any) -> Any:
    """DataLoader collate for SequenceWindows: the batch is already gathered."""
    return batch
