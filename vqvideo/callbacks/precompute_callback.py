"""`PrecomputeCodesAtFitEnd`: build the code cache right after the VQ-VAE's `fit`, from the checkpoint it wrote.

Exactly `vqvideo precompute --config CONFIG --vqvae <that checkpoint> --out OUT [ARGS]`: same clips, same files,
same refusal of a cache made by another checkpoint (pass "--overwrite" in `args` to rebuild it every fit).
Add it to the VQ-VAE YAML:
    trainer:
      callbacks:
        - class_path: vqvideo.callbacks.precompute_callback.PrecomputeCodesAtFitEnd
          init_args: {config: experiments/demo/precompute.yaml, out: outputs/demo/codes, args: [--overwrite]}
Under DDP the cache is built by global rank 0 alone, on one device, after training has finished.
"""

from __future__ import annotations

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback


class PrecomputeCodesAtFitEnd(Callback):
    """config: a precompute YAML (None = the built-in defaults); out: the cache directory; args: more
    `vqvideo precompute` arguments, e.g. ["--overwrite", "--data.num_workers", "4"]."""

    def __init__(self, out: str = "outputs/demo/codes", config: str | None = "experiments/demo/precompute.yaml",
                 args: list[str] | None = None) -> None:
        self.out, self.config, self.args = out, config, list(args or [])

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        checkpoint = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if not checkpoint:
            raise RuntimeError(
                "PrecomputeCodesAtFitEnd needs the checkpoint this fit wrote: add a ModelCheckpoint callback "
                "(e.g. dirpath: outputs/demo, filename: vqvae, save_top_k: 1) to the trainer"
            )
        from vqvideo.commands.precompute import main as precompute

        argv = (["--config", self.config] if self.config else []) + ["--vqvae", checkpoint, "--out", self.out]
        argv += ["--trainer.devices", "1", "--trainer.strategy", "auto", *self.args]
        if precompute(argv) != 0:
            raise RuntimeError(f"building the code cache {self.out} from {checkpoint} failed (see the message above)")
