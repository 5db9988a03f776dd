"""LightningCLI wiring shared by every stage (`vqvideo fit --config experiments/...`)."""

from __future__ import annotations

from pytorch_lightning import LightningDataModule, LightningModule
from pytorch_lightning.cli import LightningCLI, SaveConfigCallback


def build_cli(args: list[str] | None, run: bool = True) -> LightningCLI:
    """Model and data are chosen by `class_path` in the YAML, so one CLI serves all three stages."""
    return LightningCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=args,
        run=run,
        parser_kwargs={"parser_mode": "omegaconf"},
        save_config_callback=SaveConfigCallback,
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
    )
