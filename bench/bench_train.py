"""Training throughput of MarketFlow's trainer against a bare PyTorch loop, same run.

For the LSTM-attention and the seq2seq Transformer: the same nn.Module (same seed, same
initial weights), the same feature tensor and sample rows, the same optimizer, batch size and
epochs. The bare loop is what one would write by hand: shuffle, gather the windows with one
index into the tensor, forward, loss, backward, AdamW step. The trainer adds what it is for
(per-epoch validation-free loss tracking, LR schedule, gradient clipping, best-state copy,
seeded generator, optional AMP on CUDA). Rounds alternate (bare, trainer, bare, trainer ...) and
the median of each is reported, so background load hits both alike. Target: trainer/bare >= 0.9.

    .venv/bin/python bench/bench_train.py [--rows 12000] [--features 64] [--epochs 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.settings import get_settings  # noqa: E402
from ml.data.windows import SequenceWindows  # noqa: E402
from ml.models.neural import LSTMAttentionNet, Seq2SeqTransformer  # noqa: E402
from ml.models.trainer import Trainer, TrainerConfig, pick_device  # noqa: E402

LOOKBACK = 20


def build(kind: str, n_features: int) -> torch.nn.Module:
    torch.manual_seed(0)
    if kind == "lstm_attention":
        return LSTMAttentionNet(n_features, 32, 2, 0.1, 2)
    return Seq2SeqTransformer(n_features, 32, 4, 1, 0.1, 5, LOOKBACK)


def bare_loop(module: torch.nn.Module, data: SequenceWindows, epochs: int, batch: int,
              device: str) -> float:  # fmt: skip
    module.to(device).train()
    data = data.to(device)
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(0)
    _sync(device)
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(data), generator=generator).to(device)
        for i in range(0, len(data), batch):
            x, y = data.batch(order[i : i + batch])
            optimizer.zero_grad(set_to_none=True)
            loss = module.loss(x, y)
            loss.backward()
            optimizer.step()
    _sync(device)
    return time.perf_counter() - start


def trainer_loop(module: torch.nn.Module, data: SequenceWindows, epochs: int, batch: int,
                 device: str) -> float:  # fmt: skip
    config = TrainerConfig(epochs=epochs, batch_size=batch, lr=1e-3, patience=epochs,
                           device=device)  # fmt: skip
    trainer = Trainer(config, seed=0)
    _sync(device)
    start = time.perf_counter()
    trainer.fit(module, data, None)
    _sync(device)
    return time.perf_counter() - start


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=12000)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    device = pick_device("auto", get_settings().training.device)
    rng = np.random.default_rng(0)
    X = torch.as_tensor(rng.normal(size=(args.rows, args.features)).astype(np.float32))
    y = torch.as_tensor(rng.normal(size=(args.rows, 5)).astype(np.float32))
    rows = np.arange(LOOKBACK - 1, args.rows)
    # Targets: two horizons for the LSTM's heads, five daily steps for the Transformer.
    datasets = {
        "lstm_attention": SequenceWindows(X, y[:, :2].contiguous(), rows, LOOKBACK),
        "transformer": SequenceWindows(X, y, rows, LOOKBACK),
    }
    samples = len(rows) * args.epochs
    print(f"device={device} threads={torch.get_num_threads()} rows={len(rows)} "
          f"features={args.features} lookback={LOOKBACK} epochs={args.epochs} "
          f"batch={args.batch} rounds={args.rounds}")  # fmt: skip
    print(f"{'model':<16}{'bare samples/s':>16}{'trainer samples/s':>19}{'ratio':>8}")
    for kind, data in datasets.items():
        bare, ours = [], []
        for _ in range(args.rounds):
            bare.append(
                bare_loop(build(kind, args.features), data, args.epochs, args.batch, device)
            )
            ours.append(
                trainer_loop(build(kind, args.features), data, args.epochs, args.batch, device)
            )
        bare_rate = samples / statistics.median(bare)
        our_rate = samples / statistics.median(ours)
        print(f"{kind:<16}{bare_rate:>16,.0f}{our_rate:>19,.0f}{our_rate / bare_rate:>8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
