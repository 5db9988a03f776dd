"""Optimization shared by every stage: AdamW, linear warmup, then cosine decay (torch LambdaLR), per step.

`OptimizationConfig` is one nested, typed argument of every stage module (`model.init_args.optimization` in
the YAMLs); the paper gives none of these values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


@dataclass(frozen=True)
class OptimizationConfig:
    """AdamW with a warmup-cosine learning rate.

    Args:
        learning_rate: peak learning rate.
        adam_betas: AdamW betas.
        weight_decay: AdamW (decoupled) weight decay.
        warmup_steps: linear warmup from 0 to the peak.
        lr_total_steps: end of the cosine (None = the trainer's total steps).
        min_lr_ratio: the cosine ends at learning_rate × min_lr_ratio.
    """

    learning_rate: float = 3e-4
    adam_betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    warmup_steps: int = 1000
    lr_total_steps: int | None = None
    min_lr_ratio: float = 0.0


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


def configure_optimization(parameters, config: OptimizationConfig, trainer) -> dict:
    """What every stage's `configure_optimizers` returns: AdamW under `warmup_cosine`, stepped per batch."""
    optimizer = torch.optim.AdamW(
        parameters, lr=config.learning_rate, betas=tuple(config.adam_betas), weight_decay=config.weight_decay
    )
    total_steps = config.lr_total_steps or int(trainer.estimated_stepping_batches)
    scheduler = warmup_cosine(optimizer, config.warmup_steps, total_steps, config.min_lr_ratio)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
