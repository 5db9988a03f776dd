"""Loading trained stages from Lightning checkpoints, safely (`weights_only=True`) and with clear errors.

Every stage module records its constructor arguments with `save_hyperparameters()` (plain ints, floats,
strings, tuples), so a checkpoint rebuilds the exact model it was trained with: no defaults are guessed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import torch
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
