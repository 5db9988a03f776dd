"""Stage 1 as a LightningModule: trains the hierarchical video VQ-VAE (§2.1 eq. 2, §3.1, Table 3).

Loss = reconstruction MSE + β · commitment (the codebook term of eq. 2 is replaced by the EMA update inside
the quantizers). Logs recon MSE, PSNR, per-level perplexity, fraction of codes used and dead-code restarts,
and, each validation epoch, a TensorBoard GIF of input | reconstruction | top-only reconstruction on a
fixed validation batch. `load_vqvae` gives later stages the trained VQ-VAE, frozen.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.loggers import TensorBoardLogger
from torchmetrics.image import PeakSignalNoiseRatio

from vqvideo.callbacks.video_logger import log_video
from vqvideo.lit.checkpoints import load_stage
from vqvideo.lit.schedules import stepped_warmup_cosine
from vqvideo.models.vqvae import VQVAE, VQVAEOutput

Triple = tuple[int, int, int]


class VQVAEModule(pl.LightningModule):
    """Wraps one `VQVAE` (attribute `.vqvae`). Batches: dicts with "video" (B, 3, T, H, W) float in [-1, 1].

    num_frames / resolution describe the clips the config trains on (used by `describe` and
    `example_inputs`; the model itself accepts any size its strides divide)."""

    def __init__(
        self,
        hidden_channels: int = 128,
        residual_channels: int = 32,
        num_residual_layers: int = 2,
        num_top_codes: int = 512,
        num_bottom_codes: int = 512,
        code_dim: int = 64,
        bottom_kernel: Triple = (4, 8, 8),
        bottom_stride: Triple = (2, 4, 4),
        top_kernel: Triple = (4, 4, 4),
        top_stride: Triple = (2, 2, 2),
        ema_decay: float = 0.99,
        ema_epsilon: float = 1e-5,
        data_init: bool = True,
        restart_dead_codes: bool = False,
        dead_code_patience: int = 50,
        bottom_mask_prob: float = 0.1,
        commitment_cost: float = 0.25,
        learning_rate: float = 3e-4,
        adam_betas: tuple[float, float] = (0.9, 0.999),
        weight_decay: float = 0.0,
        warmup_steps: int = 1000,
        lr_total_steps: int | None = None,
        min_lr_ratio: float = 0.0,
        num_frames: int = 16,
        resolution: int = 256,
        num_video_clips: int = 4,
        video_fps: float = 8.0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.vqvae = VQVAE(
            hidden_channels=hidden_channels, residual_channels=residual_channels,
            num_residual_layers=num_residual_layers, num_top_codes=num_top_codes, num_bottom_codes=num_bottom_codes,
            code_dim=code_dim, bottom_kernel=bottom_kernel, bottom_stride=bottom_stride, top_kernel=top_kernel,
            top_stride=top_stride, ema_decay=ema_decay, ema_epsilon=ema_epsilon, data_init=data_init,
            restart_dead_codes=restart_dead_codes, dead_code_patience=dead_code_patience,
            bottom_mask_prob=bottom_mask_prob,
        )
        self.vqvae.latent_shapes(num_frames, resolution, resolution)  # fail at construction, not mid-run
        self.train_psnr = PeakSignalNoiseRatio(data_range=2.0)  # video in [-1, 1]
        self.val_psnr = PeakSignalNoiseRatio(data_range=2.0)
        self._video_batch: torch.Tensor | None = None  # (N, 3, T, H, W) fixed val clips for the GIF summary

    # ----- describe hook (contracts.md) ------------------------------------------------------------
    @property
    def core(self) -> VQVAE:
        return self.vqvae

    def example_inputs(self, batch_size: int = 1) -> tuple[torch.Tensor, ...]:
        """One clip batch at the config's shape: ((B, 3, T, H, W) float32,)."""
        size = self.hparams.resolution
        return (torch.zeros(batch_size, 3, self.hparams.num_frames, size, size),)

    def describe_info(self) -> dict:
        frames, size = self.hparams.num_frames, self.hparams.resolution
        top_shape, bottom_shape = self.vqvae.latent_shapes(frames, size, size)
        latent_bits = math.prod(top_shape) * math.log2(self.hparams.num_top_codes) + math.prod(
            bottom_shape
        ) * math.log2(self.hparams.num_bottom_codes)
        pixel_bits = 3 * frames * size * size * 8
        return {
            "input_shape": [3, frames, size, size],
            "top_shape": list(top_shape),
            "bottom_shape": list(bottom_shape),
            "bits_ratio": latent_bits / pixel_bits,
        }

    # ----- training --------------------------------------------------------------------------------
    @staticmethod
    def _video(batch) -> torch.Tensor:
        if not isinstance(batch, dict) or "video" not in batch:
            raise TypeError("VQVAEModule expects batches as dicts with 'video' (B, 3, T, H, W); use KineticsDataModule")
        return batch["video"]

    def _shared_step(self, batch, stage: str) -> torch.Tensor:
        video = self._video(batch)
        output: VQVAEOutput = self.vqvae(video)
        recon_mse = F.mse_loss(output.reconstruction.float(), video.float())
        loss = recon_mse + self.hparams.commitment_cost * output.commitment_loss
        psnr = self.train_psnr if stage == "train" else self.val_psnr
        psnr(output.reconstruction.detach().float().clamp(-1, 1), video.float())
        on_step, sync = stage == "train", stage != "train"
        metrics = {
            f"{stage}/loss": loss, f"{stage}/recon_mse": recon_mse, f"{stage}/commitment": output.commitment_loss,
            f"{stage}/perplexity_top": output.top.perplexity, f"{stage}/perplexity_bottom": output.bottom.perplexity,
            f"{stage}/codes_used_top": output.top.fraction_used,
            f"{stage}/codes_used_bottom": output.bottom.fraction_used,
        }
        self.log_dict(metrics, on_step=on_step, on_epoch=not on_step, sync_dist=sync, batch_size=video.shape[0])
        self.log(f"{stage}/psnr", psnr, on_step=on_step, on_epoch=not on_step, prog_bar=True, batch_size=video.shape[0])
        if stage == "train" and self.hparams.restart_dead_codes:
            self.log("train/dead_code_restarts_top", self.vqvae.top_quantizer.total_restarts.float())
            self.log("train/dead_code_restarts_bottom", self.vqvae.bottom_quantizer.total_restarts.float())
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> torch.Tensor:
        if batch_idx == 0 and self._video_batch is None:
            self._video_batch = self._video(batch)[: self.hparams.num_video_clips].detach().clone()
        return self._shared_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        if self._video_batch is None or self.trainer.sanity_checking or not self.trainer.is_global_zero:
            return
        if not isinstance(self.logger, TensorBoardLogger):
            return
        video = self._video_batch.to(self.device)  # (N, 3, T, H, W)
        with torch.no_grad():
            codes = self.vqvae.encode(video)
            reconstruction = self.vqvae.decode_codes(*codes)
            top_only = self.vqvae.decode_top_only(codes.top, tuple(codes.bottom.shape[1:]))
        panel = torch.cat([video, reconstruction.to(video.dtype), top_only.to(video.dtype)], dim=-1)  # (N,3,T,H,3W)
        log_video(self.logger.experiment, "val/input_reconstruction_toponly", panel, self.global_step,
                  self.hparams.video_fps)

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(
            self.vqvae.parameters(), lr=self.hparams.learning_rate, betas=tuple(self.hparams.adam_betas),
            weight_decay=self.hparams.weight_decay,
        )
        return stepped_warmup_cosine(optimizer, self.hparams, self.trainer)

    def train(self, mode: bool = True) -> "VQVAEModule":
        # Embedded frozen (no trainable parameter left): keep the VQ-VAE in eval so its EMA never updates.
        if mode and not any(p.requires_grad for p in self.vqvae.parameters()):
            self.vqvae.freeze()
        return super().train(mode)


def load_vqvae(ckpt_path: str | Path) -> VQVAE:
    """The trained VQ-VAE of a `vqvideo fit` checkpoint, frozen: eval(), requires_grad_(False), stays eval."""
    return load_stage(VQVAEModule, ckpt_path, eval_mode=True).vqvae.freeze()
