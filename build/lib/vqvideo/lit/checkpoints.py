"""Checkpoints: loaded safely (`weights_only=True`) with clear errors, and written atomically.

Every stage module records its constructor arguments with `save_hyperparameters()` (plain ints, floats,
strings, tuples, dicts), so a checkpoint rebuilds the exact model it was trained with: no defaults are guessed.
`AtomicCheckpointIO` makes Lightning write each checkpoint under a temporary name and rename it, so a run killed
mid-write (or a full disk) never leaves a truncated `.ckpt` under a real name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning_fabric.utilities.cloud_io import get_filesystem
from pytorch_lightning import LightningModule

ModuleT = TypeVar("ModuleT", bound=LightningModule)


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or of another stage."""


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dict, read with `weights_only=True` (no pickled code runs)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {path} does not exist: train that stage first (e.g. `make demo` or `make train-vqvae`) "
            "or pass the path of a .ckpt written by `vqvideo fit`"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise CheckpointError(
            f"checkpoint {path} could not be read ({type(err).__name__}: {err}); it may be truncated or not a "
            "Lightning checkpoint: re-run the stage that wrote it"
        ) from err


def load_stage(module_class: type[ModuleT], path: str | Path, eval_mode: bool = True) -> ModuleT:
    """Rebuild `module_class` from its saved hyperparameters and load its weights.

    With `eval_mode` the module is put in eval mode with gradients off: a frozen stage used by a later one.
    """
    checkpoint = read_checkpoint(path)
    hparams = checkpoint.get("hyper_parameters")
    if hparams is None or "state_dict" not in checkpoint:
        raise CheckpointError(f"checkpoint {path} has no hyper_parameters/state_dict: it was not written by vqvideo")
    # LightningCLI (subclass mode) records "_class_path" and "_instantiator": not constructor arguments
    hparams = {key: value for key, value in hparams.items() if not key.startswith("_")}
    try:
        module = module_class(**hparams)
    except TypeError as err:
        raise CheckpointError(
            f"checkpoint {path} does not hold a {module_class.__name__} ({err}); pass the checkpoint of that stage"
        ) from err
    missing, unexpected = module.load_state_dict(checkpoint["state_dict"], strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {path} does not match {module_class.__name__}: missing {list(missing)[:5]}, "
            f"unexpected {list(unexpected)[:5]}; pass the checkpoint of that stage"
        )
    if eval_mode:
        module.eval().requires_grad_(False)
    return module


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch.save checkpointing, to a temporary name in the same folder and then renamed (local paths;
    other filesystems are written as Lightning does)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        protocol = get_filesystem(path).protocol
        if "file" not in (protocol if isinstance(protocol, (tuple, list)) else (protocol,)):
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            super().save_checkpoint(checkpoint, temp, storage_options)
            os.replace(temp, path)
        finally:
            temp.unlink(missing_ok=True)
