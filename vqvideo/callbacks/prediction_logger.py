"""Sampled predictions in TensorBoard while a prior trains (the question a loss curve cannot answer).

Every `every_n_validations` validation runs, the first validation clips' given codes are completed by the
prior being trained and decoded with the frozen VQ-VAE, laid out [ground truth | sample 1 | ... | sample K]
with the given frames marked (vqvideo/sampling/panels.py), and logged as a GIF image summary (`log_video`):
- top prior: future top slices sampled; decoded with the bottom level masked (the bottom prior may not exist
  yet), the ground truth panel decoded the same way, so the panels compare the top level alone;
- bottom prior: future bottom slices sampled given the true top codes, decoded with both levels.
Sampling uses the same code path as `vqvideo predict` (a sampler from vqvideo.sampling).
"""

from __future__ import annotations

import numpy as np
import torch
from einops import rearrange
from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only, rank_zero_warn

from vqvideo.callbacks.video_logger import log_video
from vqvideo.sampling import DEFAULT_SAMPLER, SamplingOptions, get_sampler
from vqvideo.sampling.panels import prediction_panel
from vqvideo.video_io import video_to_uint8


class PredictionLogger(Callback):
    """vqvae_checkpoint: the VQ-VAE whose codes the prior models (decodes the samples).
    every_n_validations: log on every n-th validation run (1 = each). num_clips: validation clips shown;
    num_samples: futures per clip. sampler: "cached" | "naive" (same codes; naive costs minutes at demo size).
    seed: the same draws every time, so successive logs show the prior improving rather than new randomness."""

    def __init__(self, vqvae_checkpoint: str = "outputs/demo/vqvae.ckpt", every_n_validations: int = 1,
                 num_clips: int = 2, num_samples: int = 2, temperature: float = 1.0,
                 sampler: str = DEFAULT_SAMPLER, seed: int = 0, fps: float = 4.0):
        super().__init__()
        if every_n_validations < 1 or num_clips < 1 or num_samples < 1:
            raise ValueError("every_n_validations, num_clips and num_samples must be >= 1")
        self.vqvae_checkpoint = vqvae_checkpoint
        self.every_n_validations = every_n_validations
        self.num_clips, self.num_samples = num_clips, num_samples
        self.options = SamplingOptions(temperature=temperature)
        self.sampler_name, self.seed, self.fps = sampler, seed, fps
        self.validation_runs = 0
        self._batch: dict[str, torch.Tensor] | None = None  # first clips of the latest validation run
        self._batch_logged = False
        self._vqvae = None

    def on_validation_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int,
                                dataloader_idx: int = 0) -> None:
        if batch_idx == 0 and dataloader_idx == 0 and not trainer.sanity_checking:
            self._batch = {key: value[: self.num_clips].detach() for key, value in batch.items()
                           if isinstance(value, torch.Tensor)}
            self._batch_logged = False

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or self._batch is None or self._batch_logged:
            return
        self.validation_runs += 1
        if self.validation_runs % self.every_n_validations == 0:
            self.log_prediction(trainer, pl_module)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """A run cut short (max_time) may end between two logging validations: log the final prior anyway."""
        if self._batch is not None and not self._batch_logged:
            self.log_prediction(trainer, pl_module)

    @rank_zero_only
    def log_prediction(self, trainer: Trainer, pl_module: LightningModule) -> None:
        writer = next((lg.experiment for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)
        if writer is None:
            rank_zero_warn("PredictionLogger needs a TensorBoardLogger; no prediction logged")
            return
        was_training = pl_module.training
        pl_module.eval()  # dropout off: sample the model that validation scored
        try:
            truth, samples, num_given_frames, tag = self.sample(pl_module, self._batch)
        finally:
            pl_module.train(was_training)
        log_video(writer, tag, panels_video(truth, samples, num_given_frames), trainer.global_step, self.fps)
        self._batch_logged = True

    def vqvae(self, device: torch.device):
        if self._vqvae is None:
            from vqvideo.lit.vqvae_module import load_vqvae

            self._vqvae = load_vqvae(self.vqvae_checkpoint)
        return self._vqvae.to(device)

    @torch.no_grad()
    def sample(self, pl_module: LightningModule, batch: dict[str, torch.Tensor]):
        """→ truth (N, 3, T, H, W), samples (N, K, 3, T, H, W) float in [-1, 1], num_given_frames, tag."""
        generator = torch.Generator().manual_seed(self.seed)
        sampler, prior, vqvae = get_sampler(self.sampler_name), pl_module.prior, self.vqvae(pl_module.device)
        repeat = lambda codes: codes.repeat_interleave(self.num_samples, dim=0)  # noqa: E731  (N*K, ...)
        if "target_top" in batch:  # top prior batch
            cond_top, cond_bottom, target_top = batch["cond_top"], batch["cond_bottom"], batch["target_top"]
            future = sampler.sample_top(prior, repeat(cond_top), repeat(cond_bottom), target_top.shape[1],
                                        self.options, generator)  # (N*K, Tp, Ht, Wt)
            truth_top, sampled_top = torch.cat([cond_top, target_top], 1), torch.cat([repeat(cond_top), future], 1)
            bottom_shape = [size * stride for size, stride in zip(truth_top.shape[1:], vqvae.top_stride)]
            truth = vqvae.decode_top_only(truth_top, bottom_shape)
            decoded = vqvae.decode_top_only(sampled_top, bottom_shape)
            given_fraction, tag = cond_top.shape[1] / truth_top.shape[1], "prediction/top_prior_top_level_only"
        else:  # bottom prior batch: true top codes, sampled future bottom slices
            top_codes, bottom_codes = batch["top_codes"], batch["bottom_codes"]
            num_given = int(pl_module.hparams["num_given_slices"])
            sampled_bottom = sampler.sample_bottom(prior, repeat(top_codes), repeat(bottom_codes[:, :num_given]),
                                                   bottom_codes.shape[1] - num_given, self.options, generator)
            truth = vqvae.decode_codes(top_codes, bottom_codes)
            decoded = vqvae.decode_codes(repeat(top_codes), sampled_bottom)
            given_fraction, tag = num_given / bottom_codes.shape[1], "prediction/bottom_prior_given_true_top"
        samples = rearrange(decoded, "(n k) c t h w -> n k c t h w", k=self.num_samples)
        return truth, samples, round(given_fraction * truth.shape[2]), tag


def panels_video(truth: torch.Tensor, samples: torch.Tensor, num_given_frames: int) -> torch.Tensor:
    """truth (N, 3, T, H, W), samples (N, K, 3, T, H, W) in [-1, 1] → (N, 3, T, H', W') one panel per clip."""
    panels = [prediction_panel(video_to_uint8(clip), video_to_uint8(clip_samples), num_given_frames)
              for clip, clip_samples in zip(truth, samples)]
    stacked = torch.from_numpy(np.stack(panels)).float()  # (N, T, H', W', 3) in [0, 255]
    return rearrange(stacked, "n t h w c -> n c t h w") / 127.5 - 1.0
