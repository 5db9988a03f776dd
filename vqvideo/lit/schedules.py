"""Learning-rate schedules shared by every stage: linear warmup, then cosine decay (torch LambdaLR)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


@dataclass
class WarmupCosineFactor:
    """Multiplier of the base LR at a step: linear 0->1 over `warmup_steps`, cosine 1->`min_lr_ratio` until
    `total_steps`, then `min_lr_ratio`. A plain dataclass (not a lambda) so the scheduler's state_dict holds
    only numbers and checkpoints load with weights_only=True."""

    warmup_steps: int
    total_steps: int
    min_lr_ratio: float

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        decay_steps = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / decay_steps)
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def warmup_cosine(optimizer: Optimizer, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.0) -> LambdaLR:
    """LambdaLR stepping once per optimizer step (use `interval: "step"` in Lightning)."""
    if warmup_steps < 0 or total_steps < 1 or not 0.0 <= min_lr_ratio <= 1.0:
        raise ValueError(
            f"warmup_cosine needs warmup_steps >= 0, total_steps >= 1 and min_lr_ratio in [0, 1]; got "
            f"{warmup_steps}, {total_steps}, {min_lr_ratio}"
        )
    return LambdaLR(optimizer, WarmupCosineFactor(warmup_steps, total_steps, min_lr_ratio))


def stepped_warmup_cosine(optimizer: Optimizer, hparams, trainer) -> dict:
    """What every stage's `configure_optimizers` returns: `optimizer` under `warmup_cosine`, stepped per batch.

    hparams: the module's hparams (warmup_steps, min_lr_ratio, lr_total_steps; lr_total_steps None = the
    trainer's total steps)."""
    total_steps = hparams.lr_total_steps or int(trainer.estimated_stepping_batches)
    scheduler = warmup_cosine(optimizer, hparams.warmup_steps, total_steps, hparams.min_lr_ratio)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
