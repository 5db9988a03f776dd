"""Training stage 3: the bottom prior (paper §3.2, Tables 4 and 8) on cached codes.

Each batch from `CodesDataModule(target="bottom")` holds spliced code volumes and, per sample, the bottom slice
to learn (`slice_index` >= the number of given bottom slices, drawn by the data module). One teacher-forced
pass gives that slice's logits; the loss is their cross-entropy, logged in nats and in bits per code.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pytorch_lightning import LightningModule

from vqvideo.lit.checkpoints import load_stage
from vqvideo.lit.code_spec import as_dict, check_against_cache
from vqvideo.lit.metrics import UnigramBits
from vqvideo.lit.schedules import stepped_warmup_cosine
from vqvideo.models.bottom_prior import BottomPrior


class BottomPriorModule(LightningModule):
    """Wraps one `BottomPrior` (`.prior`). Latent facts (codebook sizes, top_shape (Tt, Ht, Wt), bottom_shape
    (Tb, Hb, Wb), num_given_slices) must equal the cache's `code_spec`: checked when fitting starts.

    lr_total_steps: cosine horizon (None = the trainer's total steps). Sampled, decoded predictions are logged
    to TensorBoard by the `PredictionLogger` callback (vqvideo/callbacks/prediction_logger.py) set in the YAML.
    """

    def __init__(
        self,
        num_codes: int = 512,
        num_top_codes: int = 512,
        top_shape: tuple[int, int, int] = (4, 32, 32),
        bottom_shape: tuple[int, int, int] = (8, 64, 64),
        num_given_slices: int = 2,
        hidden_channels: int = 512,
        residual_channels: int = 1024,
        num_layers: int = 20,
        num_attention_layers: int = 4,
        num_heads: int = 8,
        kernel_size: int = 5,
        dropout: float = 0.0,
        window: int = 2,
        top_embed_dim: int = 64,
        top_channels: int = 1024,
        bottom_embed_dim: int = 64,
        window_channels: int = 256,
        cond_channels: int = 1024,
        cond_residual_channels: int = 256,
        num_cond_blocks: int = 20,
        learning_rate: float = 3e-4,
        weight_decay: float = 0.0,
        adam_betas: tuple[float, float] = (0.9, 0.999),
        warmup_steps: int = 1000,
        lr_total_steps: int | None = None,
        min_lr_ratio: float = 0.0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.val_unigram_bits = UnigramBits(num_codes)
        self.prior = BottomPrior(
            num_codes=num_codes,
            num_top_codes=num_top_codes,
            slice_shape=tuple(bottom_shape[1:]),
            hidden_channels=hidden_channels,
            residual_channels=residual_channels,
            num_layers=num_layers,
            num_attention_layers=num_attention_layers,
            num_heads=num_heads,
            kernel_size=kernel_size,
            dropout=dropout,
            window=window,
            top_upsample_stride=upsample_stride(top_shape, bottom_shape),
            top_embed_dim=top_embed_dim,
            top_channels=top_channels,
            bottom_embed_dim=bottom_embed_dim,
            window_channels=window_channels,
            cond_channels=cond_channels,
            cond_residual_channels=cond_residual_channels,
            num_cond_blocks=num_cond_blocks,
        )

    # ---- describe hook (contracts.md) ----
    @property
    def core(self) -> BottomPrior:
        return self.prior

    def example_inputs(self, batch_size: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(bottom_codes (B, Tb, Hb, Wb), top_codes (B, Tt, Ht, Wt), slice_index (B,)) int64: one forward pass."""
        device = self.prior.output.weight.device
        bottom = torch.zeros((batch_size, *self.hparams.bottom_shape), dtype=torch.long, device=device)
        top = torch.zeros((batch_size, *self.hparams.top_shape), dtype=torch.long, device=device)
        slice_index = torch.full((batch_size,), self.hparams.num_given_slices, dtype=torch.long, device=device)
        return bottom, top, slice_index

    def describe_info(self) -> dict:
        hp = self.hparams
        return {
            "top_shape": list(hp.top_shape),
            "bottom_shape": list(hp.bottom_shape),
            "window": hp.window,
            "attention_after_layers": [i + 1 for i in self.prior.attention_after],
            "positions_per_slice": hp.bottom_shape[1] * hp.bottom_shape[2],
        }

    # ---- training ----
    def on_fit_start(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        spec = getattr(datamodule, "code_spec", None)
        if spec is not None:
            check_code_spec(dict(self.hparams), spec)

    def _shared_step(self, batch: dict, stage: str) -> torch.Tensor:
        bottom_codes, top_codes, slice_index = batch["bottom_codes"], batch["top_codes"], batch["slice_index"]
        logits = self.prior(bottom_codes, top_codes, slice_index)  # (B, K, Hb, Wb)
        target = bottom_codes[torch.arange(len(slice_index), device=slice_index.device), slice_index]  # (B, Hb, Wb)
        if stage == "val":
            self.val_unigram_bits.update(target)
        loss = F.cross_entropy(logits, target)
        batch_size = len(slice_index)
        self.log(f"{stage}/loss", loss, prog_bar=True, sync_dist=stage != "train", batch_size=batch_size)
        self.log(f"{stage}/bits_per_code", loss / math.log(2), sync_dist=stage != "train", batch_size=batch_size)
        return loss

    def training_step(self, batch: dict, batch_index: int) -> torch.Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: dict, batch_index: int) -> torch.Tensor:
        return self._shared_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self.log("val/unigram_bits_per_code", self.val_unigram_bits)  # compare with val/bits_per_code

    def test_step(self, batch: dict, batch_index: int) -> torch.Tensor:
        return self._shared_step(batch, "test")

    def configure_optimizers(self):
        hp = self.hparams
        optimizer = torch.optim.AdamW(
            self.prior.parameters(), lr=hp.learning_rate, betas=tuple(hp.adam_betas), weight_decay=hp.weight_decay
        )
        return stepped_warmup_cosine(optimizer, hp, self.trainer)


def upsample_stride(top_shape, bottom_shape) -> tuple[int, int, int]:
    """Per-axis factor from the top latent grid (Tt, Ht, Wt) to the bottom one (Tb, Hb, Wb), e.g. (2, 2, 2)."""
    factors = []
    for top, bottom, axis in zip(top_shape, bottom_shape, "THW"):
        if bottom % top:
            raise ValueError(f"bottom_shape {tuple(bottom_shape)} is not a multiple of top_shape {tuple(top_shape)} "
                             f"along {axis}: set both from the cache's code_spec")  # fmt: skip
        factors.append(bottom // top)
    return tuple(factors)


SPEC_KEYS = {
    "num_codes": "num_bottom_codes",
    "num_top_codes": "num_top_codes",
    "top_shape": "top_shape",
    "bottom_shape": "bottom_shape",
    "num_given_slices": "cond_bottom_shape",
}


def check_code_spec(hparams: dict, code_spec) -> None:
    """Raise one clear error if the module's latent facts differ from the data's `code_spec`."""
    spec = as_dict(code_spec)
    spec["cond_bottom_shape"] = spec["cond_bottom_shape"][0]  # num_given_slices is its first dimension
    check_against_cache("bottom prior", {ours: (hparams[ours], spec[theirs]) for ours, theirs in SPEC_KEYS.items()})


def load_bottom_prior(checkpoint_path: str) -> BottomPrior:
    """The trained `BottomPrior` of a checkpoint, frozen (eval mode, no gradients)."""
    return load_stage(BottomPriorModule, checkpoint_path).prior
