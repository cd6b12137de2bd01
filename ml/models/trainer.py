"""The PyTorch trainer shared by the neural models.

Seeded; batches gathered from one feature tensor on the device (ml.data.windows.SequenceWindows);
early stopping on the validation loss with the best weights restored; a learning-rate schedule
(plateau or cosine); gradient clipping; CUDA with mixed precision (bf16/fp16 autocast) when a GPU
is present, CPU otherwise; a checkpoint after every epoch so an interrupted fit resumes where it
stopped; an optional tqdm bar per epoch. A module trained here implements `loss(x, y)` and
`forward(x) -> score`.
"""

from __future__ import annotations

import copy
import logging
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ml.models.base import Runtime

log = logging.getLogger(__name__)


@dataclass
class TrainerConfig:
    epochs: int = 20
    batch_size: int = 512
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 5
    scheduler: str = "plateau"  # plateau | cosine | none
    grad_clip: float = 1.0
    amp: bool = True  # only on CUDA
    device: str = "auto"  # auto | cpu | cuda
    progress: bool = False
    checkpoint_dir: str | None = None
    eval_batch_size: int = 4096
    # Rows an epoch trains on, drawn afresh each epoch (0: every training row). Keeps an epoch's
    # cost flat when the training window grows to millions of rows (a real universe on CPU).
    epoch_samples: int = 0


def pick_device(wanted: str = "auto", override: str = "") -> str:
    """`override` (the settings' training device) wins; else `wanted`; "auto": CUDA when torch
    sees a GPU, else CPU."""
    import torch

    wanted = override or wanted
    if wanted == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return wanted


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


class Trainer:
    def __init__(
        self, config: TrainerConfig, seed: int = 0, runtime: Runtime | None = None
    ) -> None:
        self.config = config
        self.seed = seed
        self.runtime = runtime or Runtime()
        self.device = pick_device(config.device, self.runtime.device)
        self.history: list[dict[str, float]] = []
        self.best_epoch = -1
        self.resumed_from = -1

    def _autocast(self) -> Any:
        import contextlib

        import torch

        if self.device.startswith("cuda") and self.config.amp:
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            return torch.autocast("cuda", dtype=dtype)
        return contextlib.nullcontext()

    def fit(self, module: Any, train: Any, valid: Any | None) -> Any:
        """Train `module` on SequenceWindows `train`; early-stop on `valid`; best weights back."""
        import torch

        cfg = self.config
        seed_everything(self.seed)
        module.to(self.device)
        train = train.to(self.device)
        valid = valid.to(self.device) if valid is not None and len(valid) else None
        optimizer = torch.optim.AdamW(module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        scheduler: Any = None
        if cfg.scheduler == "plateau":
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, factor=0.5, patience=max(1, cfg.patience // 2)
            )
        elif cfg.scheduler == "cosine":
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
                optimizer, T_max=max(1, cfg.epochs)
            )
        use_scaler = self.device.startswith("cuda") and cfg.amp and not _bf16()
        scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
        generator = torch.Generator(device="cpu").manual_seed(self.seed)

        best_loss, best_state, bad_epochs, start_epoch = float("inf"), None, 0, 0
        ckpt = self._checkpoint_path()
        if ckpt is not None and ckpt.exists():
            # weights_only: a checkpoint is data (tensors, numbers, dicts); nothing in it is executed.
            state = torch.load(ckpt, map_location=self.device, weights_only=True)
            module.load_state_dict(state["module"])
            optimizer.load_state_dict(state["optimizer"])
            if scheduler is not None and state.get("scheduler"):
                scheduler.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            generator.set_state(state["generator"])
            torch.set_rng_state(state["torch_rng"])
            best_loss, best_state = state["best_loss"], state["best_state"]
            bad_epochs, start_epoch = state["bad_epochs"], state["epoch"] + 1
            self.history, self.best_epoch = state["history"], state["best_epoch"]
            self.resumed_from = state["epoch"]
            log.info("resumed from %s at epoch %d", ckpt, start_epoch)

        n = len(train)
        for epoch in range(start_epoch, cfg.epochs):
            if bad_epochs > cfg.patience:
                break
            module.train()
            order = torch.randperm(n, generator=generator)
            if cfg.epoch_samples:
                order = order[: cfg.epoch_samples]
            order = order.to(self.device)
            n_epoch = len(order)
            batches = range(0, n_epoch, cfg.batch_size)
            bar = _bar(batches, epoch, cfg) if cfg.progress or self.runtime.progress else batches
            total, seen = 0.0, 0
            for start in bar:
                x, y = train.batch(order[start : start + cfg.batch_size])
                optimizer.zero_grad(set_to_none=True)
                with self._autocast():
                    loss = module.loss(x, y)
                scaler.scale(loss).backward()
                if cfg.grad_clip:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                total += float(loss.detach()) * len(y)
                seen += len(y)
            train_loss = total / max(1, seen)
            val_loss = self.evaluate_loss(module, valid) if valid is not None else train_loss
            if scheduler is not None:
                if cfg.scheduler == "plateau":
                    scheduler.step(val_loss)
                else:
                    scheduler.step()
            if val_loss < best_loss - 1e-7:
                best_loss, bad_epochs, self.best_epoch = val_loss, 0, epoch
                best_state = copy.deepcopy(module.state_dict())
            else:
                bad_epochs += 1
            self.history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss})
            if ckpt is not None:
                self._save(
                    ckpt,
                    module,
                    optimizer,
                    scheduler,
                    scaler,
                    generator,
                    epoch,
                    best_loss,
                    best_state,
                    bad_epochs,
                )
        if best_state is not None:
            module.load_state_dict(best_state)
        if ckpt is not None and ckpt.exists():
            ckpt.unlink()
        module.to("cpu")
        return module

    def _checkpoint_path(self) -> Path | None:
        if not self.config.checkpoint_dir:
            return None
        path = Path(self.config.checkpoint_dir)
        path.mkdir(parents=True, exist_ok=True)
        return path / "last.pt"

    def _save(self, path: Path, module: Any, optimizer: Any, scheduler: Any, scaler: Any,
              generator: Any, epoch: int, best_loss: float, best_state: Any,
              bad_epochs: int) -> None:  # fmt: skip
        import torch

        tmp = path.with_suffix(".tmp")
        torch.save(
            {
                "module": module.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "scaler": scaler.state_dict(),
                "generator": generator.get_state(),
                "torch_rng": torch.get_rng_state(),
                "epoch": epoch,
                "best_loss": best_loss,
                "best_state": best_state,
                "bad_epochs": bad_epochs,
                "history": self.history,
                "best_epoch": self.best_epoch,
                "config": asdict(self.config),
            },
            tmp,
        )
        tmp.replace(path)  # atomic: a kill mid-write leaves the previous checkpoint

    def evaluate_loss(self, module: Any, data: Any) -> float:
        import torch

        module.eval()
        total, seen = 0.0, 0
        with torch.no_grad(), self._autocast():
            for start in range(0, len(data), self.config.eval_batch_size):
                positions = torch.arange(
                    start, min(start + self.config.eval_batch_size, len(data)), device=self.device
                )
                x, y = data.batch(positions)
                total += float(module.loss(x, y)) * len(y)
                seen += len(y)
        return total / max(1, seen)


def predict(module: Any, data: Any, batch_size: int = 4096, device: str = "cpu") -> np.ndarray:
    """Scores of every sample of SequenceWindows `data`, in order, as float64."""
    import torch

    module.to(device).eval()
    data = data.to(device)
    out = []
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            positions = torch.arange(start, min(start + batch_size, len(data)), device=device)
            x, _ = data.batch(positions)
            out.append(module(x).float().cpu().numpy())
    module.to("cpu")
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


def _bf16() -> bool:
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def _bar(batches: range, epoch: int, cfg: TrainerConfig) -> Any:
    import sys

    from tqdm import tqdm

    return tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, file=sys.stderr)
