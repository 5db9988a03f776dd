"""Training stage 2: the top prior (paper §3.2, Tables 4–6) on cached codes.

Batches from `CodesDataModule(target="top")` hold the given frames' codes (`cond_top`, `cond_bottom`) and the
future top codes (`target_top`). One teacher-forced pass gives logits for every future position; the loss is
their cross-entropy, logged in nats (`*/loss`) and bits per code (`*/bits_per_code`).

Latent facts (codebook sizes, latent shapes) are init args with the paper's values, so `vqvideo describe` and
`load_top_prior` need no data; when fitting starts they are checked against the cache manifest's
`code_spec` and any difference is one clear error naming the YAML key. (Linking them with LightningCLI
`link_arguments` would need stage-specific wiring in the shared CLI.)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pytorch_lightning import LightningModule
from pytorch_lightning.loggers import TensorBoardLogger

from vqvideo.callbacks.video_logger import log_video
from vqvideo.lit.checkpoints import load_stage
from vqvideo.lit.code_spec import as_dict, check_against_cache
from vqvideo.lit.metrics import UnigramBits
from vqvideo.lit.schedules import stepped_warmup_cosine
from vqvideo.lit.vqvae_module import load_vqvae
from vqvideo.models.top_prior import TopPrior
from vqvideo.sampling import get_sampler
from vqvideo.sampling.base import SamplingOptions

SPEC_KEYS = ("num_top_codes", "num_bottom_codes", "top_shape", "bottom_shape", "cond_top_shape", "cond_bottom_shape")


class TopPriorModule(LightningModule):
    """Wraps one `TopPrior` (`.prior`). Defaults are the paper's (Tables 3–6).

    Latent facts (must equal the cache's code_spec): num_top_codes, num_bottom_codes, top_shape (Tt, Ht, Wt),
    bottom_shape (Tb, Hb, Wb), cond_top_shape (Tc, Ht, Wt), cond_bottom_shape (Tcb, Hb, Wb); the prior
    predicts Tt - Tc slices. Architecture: see `TopPrior`. Optimisation: AdamW, linear warmup then cosine
    (lr_total_steps None = the trainer's total steps). Video: with `vqvae_checkpoint`, every
    `video_every_n_val_epochs` validations `num_video_samples` validation clips are sampled and decoded
    with the bottom level masked (true | sampled future top codes) into TensorBoard.
    """

    def __init__(
        self,
        num_top_codes: int = 512,
        num_bottom_codes: int = 512,
        top_shape: tuple[int, int, int] = (4, 32, 32),
        bottom_shape: tuple[int, int, int] = (8, 64, 64),
        cond_top_shape: tuple[int, int, int] = (1, 32, 32),
        cond_bottom_shape: tuple[int, int, int] = (2, 64, 64),
        channels: int = 512,
        residual_channels: int = 1024,
        num_layers: int = 40,
        attention_every: int = 5,
        num_heads: int = 8,
        kernel_size: int = 3,
        dropout: float = 0.5,
        cond_embed_channels: int = 64,
        cond_downsampled_channels: int = 256,
        cond_channels: int = 512,
        cond_residual_channels: int = 128,
        num_cond_res_blocks: int = 4,
        learning_rate: float = 3e-4,
        weight_decay: float = 0.0,
        adam_betas: tuple[float, float] = (0.9, 0.999),
        warmup_steps: int = 1000,
        lr_total_steps: int | None = None,
        min_lr_ratio: float = 0.0,
        vqvae_checkpoint: str | None = None,
        video_every_n_val_epochs: int = 1,
        num_video_samples: int = 2,
        video_sampler: str = "cached",
        video_fps: float = 8.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        check_latent_shapes(top_shape, bottom_shape, cond_top_shape, cond_bottom_shape)
        self.val_unigram_bits = UnigramBits(num_top_codes)
        self.prior = TopPrior(
            num_codes=num_top_codes,
            num_cond_bottom_codes=num_bottom_codes,
            num_cond_top_slices=cond_top_shape[0],
            num_cond_bottom_slices=cond_bottom_shape[0],
            channels=channels,
            residual_channels=residual_channels,
            num_layers=num_layers,
            attention_every=attention_every,
            num_heads=num_heads,
            kernel_size=kernel_size,
            dropout=dropout,
            cond_embed_channels=cond_embed_channels,
            cond_downsampled_channels=cond_downsampled_channels,
            cond_channels=cond_channels,
            cond_residual_channels=cond_residual_channels,
            num_cond_res_blocks=num_cond_res_blocks,
        )
        self._video_batch: dict[str, torch.Tensor] | None = None
        self._validations = 0
        self._frozen_vqvae: list = []  # loaded on first use; a list so it is neither a submodule nor saved

    @property
    def num_predicted_slices(self) -> int:
        return self.hparams.top_shape[0] - self.hparams.cond_top_shape[0]

    # ---- describe hook (contracts.md) ----
    @property
    def core(self) -> TopPrior:
        return self.prior

    def example_inputs(self, batch_size: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(target_top (B, Tp, Ht, Wt), cond_top (B, Tc, Ht, Wt), cond_bottom (B, Tcb, Hb, Wb)) int64."""
        device = self.prior.code_embedding.weight.device
        hp = self.hparams
        target_shape = (batch_size, self.num_predicted_slices, *hp.top_shape[1:])
        target = torch.zeros(target_shape, dtype=torch.long, device=device)
        cond_top = torch.zeros((batch_size, *hp.cond_top_shape), dtype=torch.long, device=device)
        cond_bottom = torch.zeros((batch_size, *hp.cond_bottom_shape), dtype=torch.long, device=device)
        return target, cond_top, cond_bottom

    def describe_info(self) -> dict:
        hp = self.hparams
        return {
            "top_shape": list(hp.top_shape),
            "cond_top_shape": list(hp.cond_top_shape),
            "cond_bottom_shape": list(hp.cond_bottom_shape),
            "predicted_shape": [self.num_predicted_slices, *hp.top_shape[1:]],
            "attention_after_layers": [i + 1 for i in range(hp.num_layers) if self.prior.attention_after(i)],
        }

    # ---- training ----
    def on_fit_start(self) -> None:
        spec = getattr(getattr(self.trainer, "datamodule", None), "code_spec", None)
        if spec is not None:
            check_code_spec(dict(self.hparams), spec)

    def _shared_step(self, batch: dict, stage: str) -> torch.Tensor:
        target = batch["target_top"]  # (B, Tp, Ht, Wt)
        logits = self.prior(target, batch["cond_top"], batch["cond_bottom"])  # (B, K, Tp, Ht, Wt)
        loss = F.cross_entropy(logits, target)
        if stage == "val":
            self.val_unigram_bits.update(target)
        sync = stage != "train"
        self.log(f"{stage}/loss", loss, prog_bar=True, sync_dist=sync, batch_size=len(target))
        self.log(f"{stage}/bits_per_code", loss / math.log(2), sync_dist=sync, batch_size=len(target))
        return loss

    def training_step(self, batch: dict, batch_index: int) -> torch.Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: dict, batch_index: int) -> torch.Tensor:
        if batch_index == 0 and self.hparams.vqvae_checkpoint:
            count = self.hparams.num_video_samples
            self._video_batch = {key: value[:count].clone() for key, value in batch.items()}
        return self._shared_step(batch, "val")

    def test_step(self, batch: dict, batch_index: int) -> torch.Tensor:
        return self._shared_step(batch, "test")

    def on_validation_epoch_end(self) -> None:
        self.log("val/unigram_bits_per_code", self.val_unigram_bits)  # compare with val/bits_per_code
        if self.trainer.sanity_checking or self._video_batch is None or not self.trainer.is_global_zero:
            return
        self._validations += 1
        due = (self._validations - 1) % self.hparams.video_every_n_val_epochs == 0
        if not due or not isinstance(self.logger, TensorBoardLogger):
            return
        panel = self.sample_video(self._video_batch)  # (N, 3, T, H, 2W)
        tag = "val/true_top_vs_sampled_top"
        log_video(self.logger.experiment, tag, panel, self.global_step, self.hparams.video_fps)

    @torch.no_grad()
    def sample_video(self, batch: dict) -> torch.Tensor:
        """batch: cond_top (N, Tc, Ht, Wt), cond_bottom (N, Tcb, Hb, Wb), target_top (N, Tp, Ht, Wt) int64
        → (N, 3, T, H, 2W) float in [-1, 1]: VQ-VAE decodings, bottom level masked, of the given + true future
        top codes | the given + sampled future top codes."""
        if not self._frozen_vqvae:
            self._frozen_vqvae.append(load_vqvae(self.hparams.vqvae_checkpoint))
        vqvae = self._frozen_vqvae[0].to(self.device)
        was_training = self.prior.training
        self.prior.eval()
        sampled = get_sampler(self.hparams.video_sampler).sample_top(
            self.prior, batch["cond_top"], batch["cond_bottom"], self.num_predicted_slices, SamplingOptions(),
            torch.Generator().manual_seed(0),
        )  # fmt: skip
        self.prior.train(was_training)
        bottom_shape = tuple(self.hparams.bottom_shape)
        truth = vqvae.decode_top_only(torch.cat([batch["cond_top"], batch["target_top"]], dim=1), bottom_shape)
        prediction = vqvae.decode_top_only(torch.cat([batch["cond_top"], sampled], dim=1), bottom_shape)
        return torch.cat([truth, prediction], dim=-1).clamp(-1, 1)

    def configure_optimizers(self):
        hp = self.hparams
        optimizer = torch.optim.AdamW(
            self.prior.parameters(), lr=hp.learning_rate, betas=tuple(hp.adam_betas), weight_decay=hp.weight_decay
        )
        return stepped_warmup_cosine(optimizer, hp, self.trainer)


def check_latent_shapes(top_shape, bottom_shape, cond_top_shape, cond_bottom_shape) -> None:
    """Clear errors for latent shapes the top prior cannot model."""
    if len(top_shape) != 3 or len(cond_top_shape) != 3 or len(cond_bottom_shape) != 3 or len(bottom_shape) != 3:
        raise ValueError("top_shape, bottom_shape, cond_top_shape, cond_bottom_shape must each be [T, H, W]")
    if tuple(cond_top_shape[1:]) != tuple(top_shape[1:]) or cond_top_shape[0] >= top_shape[0]:
        raise ValueError(
            f"cond_top_shape {list(cond_top_shape)} must have top_shape's {list(top_shape)} grid and fewer slices: "
            "copy both from the cache's code_spec"
        )


def check_code_spec(hparams: dict, code_spec) -> None:
    """Raise one clear error if the module's latent facts differ from the data's `code_spec`."""
    spec = as_dict(code_spec)
    check_against_cache("top prior", {key: (hparams[key], spec[key]) for key in SPEC_KEYS})


def load_top_prior(checkpoint_path: str) -> TopPrior:
    """The trained `TopPrior` of a checkpoint, frozen (eval mode, no gradients)."""
    return load_stage(TopPriorModule, checkpoint_path).prior
