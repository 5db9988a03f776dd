"""Says loudly when a wall-clock cap, not the step budget, ended a training run, and records which did.

The demo budgets every stage by step counts so that two runs give the same numbers to the last digit; its
`trainer.max_time` caps are only a safety net for a much slower machine. When one triggers, the run's model differs
from every other run's: this callback prints a warning naming the step reached and writes
`{"steps": int, "max_steps": int, "time_cap_hit": bool, "seconds": float}` to `record` (read by `vqvideo demo` into
timings.json).
"""

from __future__ import annotations

import time
from pathlib import Path

from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.utilities import rank_zero_only, rank_zero_warn

from vqvideo.files import atomic_write_json


def time_cap_message(steps: int, max_steps: int, seconds: float) -> str:
    return (f"\n{'!' * 100}\nTIME CAP HIT: training stopped by trainer.max_time after {seconds:.0f} s at step {steps} "
            f"of its {max_steps}-step budget. This run's model differs from a run that finished its steps: numbers "
            f"are not comparable to the last digit (the machine was slower than the budget allows).\n{'!' * 100}")


def early_stopped(trainer: Trainer) -> bool:
    """Whether an EarlyStopping callback's patience ran out (a planned, step-deterministic end of the run)."""
    callbacks = getattr(trainer, "early_stopping_callbacks", [])
    return any(callback.wait_count >= callback.patience for callback in callbacks)


class StepBudget(Callback):
    """record: where to write the JSON verdict (None: only warn)."""

    def __init__(self, record: str | None = None) -> None:
        self.record = record
        self.start = time.perf_counter()

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.start = time.perf_counter()

    @rank_zero_only
    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        steps, max_steps = trainer.global_step, trainer.max_steps
        seconds = time.perf_counter() - self.start
        stopped_early = early_stopped(trainer)
        time_cap_hit = 0 < max_steps and steps < max_steps and not stopped_early
        if time_cap_hit:
            rank_zero_warn(time_cap_message(steps, max_steps, seconds))
        if self.record:
            atomic_write_json(Path(self.record), {"steps": steps, "max_steps": max_steps, "time_cap_hit": time_cap_hit,
                                                  "early_stopped": stopped_early, "seconds": round(seconds, 1)})
