"""Stage 1 as a LightningModule: trains the hierarchical video VQ-VAE (§2.1 eq. 2, §3.1, Table 3).

Loss = reconstruction MSE + β · commitment (the codebook term of eq. 2 is replaced by the EMA update inside
the quantizers). Logs recon MSE, PSNR, per-level perplexity, fraction of codes used and dead-code restarts, and in
validation and test whether the hierarchy is used: `psnr_top_only` (the top codes decoded with the bottom level
masked, as in training's masking) beside `psnr_mean_colour` (predicting each clip's mean colour everywhere). A top
level that carries no content scores no better than the mean colour.
Videos reach TensorBoard through the `VideoLogger` callback. `load_vqvae` gives later stages the trained
VQ-VAE, frozen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn
from torchmetrics.image import PeakSignalNoiseRatio

from vqvideo.lit.checkpoints import load_stage
from vqvideo.lit.hparams import as_config, plain
from vqvideo.lit.optimization import OptimizationConfig, configure_optimization
from vqvideo.models.memory_format import channels_last_verdicts
from vqvideo.models.vqvae import VQVAE, VQVAEConfig, VQVAEOutput

STAGES = ("train", "val", "test")
LEVEL_PSNRS = ("psnr_top_only", "psnr_mean_colour")


@dataclass(frozen=True)
class BottomMaskSchedule:
    """The bottom-masking probability over training: `start_prob` at step 0, moving linearly to the model's
    `bottom_mask_prob` at `decay_steps`, constant after (decay_steps 0: the model's value throughout). Masking
    every clip first makes the top level learn content before the decoder can lean on the bottom one alone."""

    start_prob: float = 1.0
    decay_steps: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.start_prob <= 1 or self.decay_steps < 0:
            raise ValueError(f"bottom_mask_schedule needs 0 <= start_prob <= 1 and decay_steps >= 0, got {self}")

    def prob_at(self, step: int, final_prob: float) -> float:
        if step >= self.decay_steps:
            return final_prob
        return self.start_prob + (final_prob - self.start_prob) * step / self.decay_steps


class VQVAEModule(pl.LightningModule):
    """Wraps one `VQVAE` (attribute `.vqvae`). Batches: dicts with "video" (B, 3, T, H, W) float in [-1, 1].

    vqvae: the architecture (Table 3). commitment_cost: β of eq. 2 (Table 3: 0.25). optimization: AdamW and its
    schedule. bottom_mask_schedule: how the masking probability reaches `vqvae.bottom_mask_prob`. clip_shape:
    (T, H, W) of the training clips — a fact of the data, linked by the CLI from the DataModule (never typed in a
    YAML); recorded so later stages read the clips this VQ-VAE was trained on. channels_last: train with the conv
    weights, and so the activations, as (B, T, H, W, C) (torch.channels_last_3d), a layout only (the demo's CPU bf16
    step: 1.04x to 1.16x faster, `make bench-channels-last`; untested on GPUs). Some torch kernels compute wrong
    gradients in it (see `vqvideo.models.memory_format`), so the first training batch checks every convolution at its
    shape under the trainer's precision, and the VQ-VAE converts only if all agree, on every rank; otherwise it stays
    as it is, with a warning naming the convolutions. Inference (precompute, predict) keeps the default layout.
    """

    def __init__(
        self,
        vqvae: VQVAEConfig = VQVAEConfig(),
        commitment_cost: float = 0.25,
        optimization: OptimizationConfig = OptimizationConfig(),
        bottom_mask_schedule: BottomMaskSchedule = BottomMaskSchedule(),
        clip_shape: tuple[int, int, int] | None = None,
        channels_last: bool = False,
    ):
        super().__init__()
        vqvae, optimization = as_config(VQVAEConfig, vqvae), as_config(OptimizationConfig, optimization)
        bottom_mask_schedule = as_config(BottomMaskSchedule, bottom_mask_schedule)
        clip_shape = None if clip_shape is None else tuple(int(size) for size in clip_shape)
        self.save_hyperparameters({"vqvae": plain(vqvae), "commitment_cost": commitment_cost,
                                   "optimization": plain(optimization),
                                   "bottom_mask_schedule": plain(bottom_mask_schedule), "clip_shape": clip_shape,
                                   "channels_last": channels_last})
        self.optimization, self.bottom_mask_schedule, self.clip_shape = optimization, bottom_mask_schedule, clip_shape
        self.vqvae = VQVAE(vqvae)
        self._channels_last_pending = channels_last
        if clip_shape is not None:
            self.vqvae.latent_shapes(*clip_shape)  # fail at construction, not mid-run
        self.train_psnr, self.val_psnr, self.test_psnr = (PeakSignalNoiseRatio(data_range=2.0) for _ in STAGES)
        self.level_psnr = torch.nn.ModuleDict({  # val/test only: what the top level alone carries, and the floor
            f"{stage}_{name}": PeakSignalNoiseRatio(data_range=2.0) for stage in STAGES[1:] for name in LEVEL_PSNRS
        })

    # ----- describe hook (see vqvideo/lit/describe.py) ---------------------------------------------------
    @property
    def core(self) -> VQVAE:
        return self.vqvae

    def example_inputs(self, batch_size: int = 1) -> tuple[torch.Tensor, ...]:
        """One clip batch at the training clip shape: ((B, 3, T, H, W) float32,)."""
        return (torch.zeros(batch_size, 3, *self._clip_shape()),)

    def describe_info(self) -> dict:
        frames, height, width = self._clip_shape()
        top_shape, bottom_shape = self.vqvae.latent_shapes(frames, height, width)
        config = self.vqvae.config
        latent_bits = math.prod(top_shape) * math.log2(config.num_top_codes) + math.prod(bottom_shape) * math.log2(
            config.num_bottom_codes
        )
        return {
            "input_shape": [3, frames, height, width],
            "top_shape": list(top_shape),
            "bottom_shape": list(bottom_shape),
            "bits_ratio": latent_bits / (3 * frames * height * width * 8),
        }

    def _clip_shape(self) -> tuple[int, int, int]:
        if self.clip_shape is None:
            raise ValueError("this VQVAEModule has no clip_shape: build it with its DataModule (`vqvideo fit`, "
                             "`vqvideo describe --config`), or pass clip_shape=(frames, height, width)")
        return self.clip_shape

    # ----- training --------------------------------------------------------------------------------
    @staticmethod
    def _video(batch) -> torch.Tensor:
        if not isinstance(batch, dict) or "video" not in batch:
            raise TypeError("VQVAEModule expects batches as dicts with 'video' (B, 3, T, H, W); use KineticsDataModule")
        return batch["video"]

    def bottom_mask_prob(self) -> float:
        """The masking probability of the current training step."""
        return self.bottom_mask_schedule.prob_at(self.global_step, self.vqvae.config.bottom_mask_prob)

    def _shared_step(self, batch, stage: str) -> torch.Tensor:
        video = self._video(batch)
        output: VQVAEOutput = self.vqvae(video, self.bottom_mask_prob() if stage == "train" else None)
        recon_mse = F.mse_loss(output.reconstruction.float(), video.float())
        loss = recon_mse + self.hparams.commitment_cost * output.commitment_loss
        psnr = getattr(self, f"{stage}_psnr")
        psnr(output.reconstruction.detach().float().clamp(-1, 1), video.float())
        on_step, sync = stage == "train", stage != "train"
        metrics = {
            f"{stage}/loss": loss, f"{stage}/recon_mse": recon_mse, f"{stage}/commitment": output.commitment_loss,
            f"{stage}/perplexity_top": output.top.perplexity, f"{stage}/perplexity_bottom": output.bottom.perplexity,
            f"{stage}/codes_used_top": output.top.fraction_used,
            f"{stage}/codes_used_bottom": output.bottom.fraction_used,
        }
        batch_size = video.shape[0]
        self.log_dict(metrics, on_step=on_step, on_epoch=not on_step, sync_dist=sync, batch_size=batch_size)
        self.log(f"{stage}/psnr", psnr, on_step=on_step, on_epoch=not on_step, prog_bar=True, batch_size=batch_size)
        if stage != "train":
            self._log_level_psnrs(video, output.codes.top, stage)
        if stage == "train":
            self.log("train/bottom_mask_prob", self.bottom_mask_prob(), batch_size=batch_size)
        if stage == "train" and self.vqvae.config.restart_dead_codes:
            self.log("train/dead_code_restarts_top", self.vqvae.top_quantizer.total_restarts.float())
            self.log("train/dead_code_restarts_bottom", self.vqvae.bottom_quantizer.total_restarts.float())
        return loss

    @torch.no_grad()
    def _log_level_psnrs(self, video: torch.Tensor, top_codes: torch.Tensor, stage: str) -> None:
        """video (B, 3, T, H, W) in [-1, 1], top_codes (B, Tt, Ht, Wt): log top-only and mean-colour PSNR."""
        top_only = self.vqvae.decode_top_only(top_codes).float().clamp(-1, 1)
        mean_colour = video.float().mean(dim=(2, 3, 4), keepdim=True).expand_as(video)
        for name, estimate in zip(LEVEL_PSNRS, (top_only, mean_colour)):
            metric = self.level_psnr[f"{stage}_{name}"]
            metric(estimate, video.float())
            self.log(f"{stage}/{name}", metric, on_step=False, on_epoch=True, batch_size=video.shape[0])

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        if self._channels_last_pending:
            self._channels_last_pending = False
            self._adopt_channels_last(self._video(batch))

    def channels_last_verdicts(self, video: torch.Tensor) -> dict[str, bool]:
        """video (B, 3, T, H, W) float: {conv name: agrees in channels-last} at these shapes, under this trainer's
        precision."""
        return channels_last_verdicts(self.vqvae, video, self.trainer.precision_plugin.forward_context)

    def _adopt_channels_last(self, video: torch.Tensor) -> None:
        verdicts = self.channels_last_verdicts(video)
        local = torch.tensor([int(agrees) for agrees in verdicts.values()], device=self.device)
        agreed = self.all_gather(local).reshape(-1, len(verdicts)).bool().all(dim=0).tolist()
        disagree = [name for name, agrees in zip(verdicts, agreed) if not agrees]
        precision = self.trainer.precision
        if disagree:
            rank_zero_warn(f"channels_last: the VQ-VAE keeps the default layout. In channels-last, under {precision} "
                           f"on this device, at this batch's shapes, these convolutions compute outputs or gradients "
                           f"that differ from the default layout's (a torch kernel bug, checked here): "
                           f"{', '.join(disagree)}")
            return
        self.vqvae.to(memory_format=torch.channels_last_3d)
        rank_zero_info(f"channels_last: all {len(verdicts)} convolutions of the VQ-VAE agree with the default layout "
                       f"under {precision} at this batch's shapes: it trains in channels_last_3d")

    def validation_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "test")

    def configure_optimizers(self):
        return configure_optimization(self.vqvae.parameters(), self.optimization, self.trainer)

    def train(self, mode: bool = True) -> "VQVAEModule":
        # Embedded frozen (no trainable parameter left): keep the VQ-VAE in eval so its EMA never updates.
        if mode and not any(p.requires_grad for p in self.vqvae.parameters()):
            self.vqvae.freeze()
        return super().train(mode)


def load_vqvae(ckpt_path: str | Path) -> VQVAE:
    """The trained VQ-VAE of a `vqvideo fit` checkpoint, frozen: eval(), requires_grad_(False), stays eval."""
    return load_stage(VQVAEModule, ckpt_path, eval_mode=True).vqvae.freeze()
