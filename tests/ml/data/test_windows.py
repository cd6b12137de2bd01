"""ml/data/windows.py: sequence windows that index into one tensor."""

from __future__ import annotations

import numpy as np
import torch

from ml.data.windows import SequenceWindows, collate_batch


def test_windows_are_views_into_one_tensor_and_batch_through_a_dataloader(
    synthetic_panel,
) -> None:
    panel = synthetic_panel(n_days=40, symbols=("AAA", "BBB"))
    X = torch.as_tensor(panel.raw)
    y = torch.as_tensor(panel.frame[["fwd_ret_5d"]].to_numpy(np.float32))
    rows = np.flatnonzero(panel.position() >= 9)
    windows = SequenceWindows(X, y, rows, lookback=10)

    x0, y0 = windows[0]
    assert x0.shape == (10, 3)
    assert x0.untyped_storage().data_ptr() == X.untyped_storage().data_ptr()  # a view, no copy
    assert torch.equal(x0, X[rows[0] - 9 : rows[0] + 1]) and torch.equal(y0, y[rows[0]])

    loader = torch.utils.data.DataLoader(windows, batch_size=16, collate_fn=collate_batch)
    batches = list(loader)
    assert sum(len(b[1]) for b in batches) == len(rows)
    xb, yb = batches[1]
    assert xb.shape == (16, 10, 3)
    for i, row in enumerate(rows[16:32]):
        assert torch.equal(xb[i], X[row - 9 : row + 1])
        # Every window stays inside its symbol.
        assert panel.seq_start[row - 9] == panel.seq_start[row]
