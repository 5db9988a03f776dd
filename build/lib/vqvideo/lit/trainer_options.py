"""The Lightning Trainer options of the tools that run a prediction loop outside LightningCLI (`vqvideo precompute`,
`vqvideo eval`): one dataclass for their `--trainer.*` arguments, and one way to build the Trainer from it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch


@dataclass
class TrainerOptions:
    """The Trainer options that matter for a prediction loop (devices > 1 runs DDP, one part of the clips per rank)."""

    accelerator: str = "auto"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    deterministic: bool | Literal["warn"] = "warn"  # deterministic kernels where they exist
    enable_progress_bar: bool = True


@contextmanager
def process_torch_flags() -> Iterator[None]:
    """Puts back what Trainer(deterministic=...) changes for the whole process (torch's deterministic mode, cuDNN
    flags, the cuBLAS workspace variable), so a tool called in-process leaves its caller as it found it."""
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
             os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]
        if saved[4] is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        else:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = saved[4]


def run_prediction(options: TrainerOptions, out: str, callback, module, datamodule) -> bool:
    """`Trainer.predict` of `module` over `datamodule`, writing only through `callback` (a Lightning Callback; no
    logger, no checkpoints), with the process's torch flags put back afterwards. Returns whether this process is
    rank 0. Lightning is imported here so the tools' --help stays quick."""
    import pytorch_lightning as pl

    with process_torch_flags():
        trainer = pl.Trainer(**vars(options), logger=False, enable_checkpointing=False, callbacks=[callback],
                             default_root_dir=out, enable_model_summary=False)
        trainer.predict(module, datamodule=datamodule, return_predictions=False)
    return trainer.is_global_zero
