"""LightningCLI wiring shared by every stage (`vqvideo fit|validate|test --config experiments/...`).

Model and data are chosen by `class_path` in the YAML, so one CLI serves all three stages. Facts the data
knows flow into the model through `link_arguments` when both are instantiated, never re-typed in a YAML:
- `KineticsDataModule.clip_shape` → `VQVAEModule(clip_shape=...)` (the clips the VQ-VAE is trained on);
- `CodesDataModule.code_spec` (the cache manifest's codebook sizes and latent shapes) → both priors'
  `code_spec`.
A link whose target the chosen model does not take is skipped. With `--ckpt_path`, the checkpoint's recorded
architecture and optimization settings replace the YAML's (as LightningCLI does for its own checkpoints); the
data facts stay linked from the data, and a prior refuses data whose facts differ from its checkpoint's.
"""

from __future__ import annotations

from pathlib import Path

from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning import LightningDataModule, LightningModule
from pytorch_lightning.cli import LightningCLI, SaveConfigCallback

from vqvideo.files import explain_disk_full
from vqvideo.lit.checkpoints import AtomicCheckpointIO, read_checkpoint
from vqvideo.lit.configs import DATA_FACTS


def _fact(name: str):
    def read(datamodule: LightningDataModule):
        return getattr(datamodule, name, None)

    return read


class VQVideoCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        for name in DATA_FACTS:
            parser.link_arguments("data", f"model.init_args.{name}", compute_fn=_fact(name), apply_on="instantiate")

    def after_instantiate_classes(self) -> None:
        if type(self.trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # the default: write it atomically
            self.trainer.strategy.checkpoint_io = AtomicCheckpointIO()

    def _run_subcommand(self, subcommand: str) -> None:
        """The subcommand, with a full disk reported as one message naming the checkpoint folder and its size."""
        callback = self.trainer.checkpoint_callback
        folder = (callback.dirpath if callback is not None else None) or self.trainer.default_root_dir
        rerun = "run the same command again (add --ckpt_path with the last checkpoint to continue a fit)"
        with explain_disk_full(folder, checkpoint_bytes(self.model), "checkpoints and logs", rerun):
            super()._run_subcommand(subcommand)

    def _parse_ckpt_path(self) -> None:
        """Replaces LightningCLI's reading of `--ckpt_path` hyperparameters, which expects its own hparams layout
        and would set the linked data facts."""
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if not ckpt_path or not Path(ckpt_path).is_file():
            return
        hparams = read_checkpoint(ckpt_path).get("hyper_parameters") or {}
        init_args = {key: value for key, value in hparams.items() if key not in DATA_FACTS and not key.startswith("_")}
        if init_args:
            model = {"class_path": self.config[subcommand].model.class_path, "init_args": init_args}
            self.config = self.parser.parse_object({subcommand: {"model": model}}, self.config)


def build_cli(args: list[str] | None, run: bool = True) -> LightningCLI:
    """args None: LightningCLI reads sys.argv itself (passing both makes it warn on every run)."""
    return VQVideoCLI(
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


def checkpoint_bytes(model: LightningModule) -> int:
    """About what one checkpoint of `model` takes: float32 weights and buffers, and AdamW's two moments."""
    parameters = sum(parameter.numel() for parameter in model.parameters())
    buffers = sum(buffer.numel() for buffer in model.buffers())
    return 4 * (3 * parameters + buffers)
