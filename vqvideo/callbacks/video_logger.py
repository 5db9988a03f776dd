"""Video in TensorBoard while any stage trains: what a loss curve cannot show (one callback for all three stages).

Every `every_n_validations` validation runs (and once more at the end of a run cut short between two), the
first validation clips of the latest run are turned into a video and logged as an animated GIF image summary:
- VQ-VAE: input | reconstruction | top-only reconstruction (bottom level masked), tag
  `val/input_reconstruction_toponly`;
- top prior: the given codes completed by sampled future top slices, decoded with the bottom level masked (the
  bottom prior may not exist yet), beside the true top codes decoded the same way, tag
  `prediction/top_prior_top_level_only`;
- bottom prior: the future bottom slices sampled given the true top codes, decoded with both levels, tag
  `prediction/bottom_prior_given_true_top`.
Prior panels are [ground truth | sample 1 | ... | sample K] with the given frames marked (`vqvideo.panels`), sampled
with the same code path as `vqvideo predict`; their VQ-VAE is the one that encoded the code cache (recorded in its
manifest) unless `vqvae_checkpoint` names another.

GIFs are encoded with Pillow: `SummaryWriter.add_video` imports `moviepy.editor`, which moviepy 2 removed, and then
logs nothing and raises nothing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only, rank_zero_warn
from tensorboard.compat.proto.summary_pb2 import Summary

from vqvideo.panels import prediction_panel
from vqvideo.sampling import DEFAULT_SAMPLER, SamplingOptions, get_sampler
from vqvideo.video_io import gif_bytes, video_to_uint8

VQVAE_TAG = "val/input_reconstruction_toponly"
TOP_TAG = "prediction/top_prior_top_level_only"
BOTTOM_TAG = "prediction/bottom_prior_given_true_top"


def log_video(writer, tag: str, video: torch.Tensor, step: int, fps: float = 8.0) -> None:
    """Write `video` (N, 3, T, H, W) float in [-1, 1] as one animated GIF image summary at `step`, the N clips
    stacked top to bottom. writer: a torch.utils.tensorboard.SummaryWriter (`TensorBoardLogger.experiment`)."""
    if video.dim() != 5:
        raise ValueError(f"log_video expects (N, 3, T, H, W), got {tuple(video.shape)}")
    frames = video_to_uint8(rearrange(video, "n c t h w -> c t (n h) w"))  # (T, N*H, W, 3) uint8
    image = Summary.Image(
        height=frames.shape[1], width=frames.shape[2], colorspace=3, encoded_image_string=gif_bytes(frames, fps)
    )
    writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)


class VideoLogger(Callback):
    """every_n_validations: log on every n-th validation run (1 = each). num_clips: validation clips shown;
    num_samples: futures per clip (priors). sampler: "cached" | "naive" (same codes). seed: the same draws every
    time, so successive logs show the prior improving rather than new randomness. vqvae_checkpoint: priors only;
    None = the code cache's own VQ-VAE."""

    def __init__(self, every_n_validations: int = 1, num_clips: int = 2, num_samples: int = 2,
                 temperature: float = 1.0, sampler: str = DEFAULT_SAMPLER, seed: int = 0, fps: float = 8.0,
                 vqvae_checkpoint: str | None = None) -> None:
        super().__init__()
        if every_n_validations < 1 or num_clips < 1 or num_samples < 1:
            raise ValueError("every_n_validations, num_clips and num_samples must be >= 1")
        self.every_n_validations, self.num_clips, self.num_samples = every_n_validations, num_clips, num_samples
        self.options, self.sampler = SamplingOptions(temperature=temperature), get_sampler(sampler)
        self.seed, self.fps, self.vqvae_checkpoint = seed, fps, vqvae_checkpoint
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
            self.log_now(trainer, pl_module)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """A run cut short (max_time) may end between two logging validations: log the final model anyway."""
        if self._batch is not None and not self._batch_logged:
            self.log_now(trainer, pl_module)

    @rank_zero_only
    def log_now(self, trainer: Trainer, pl_module: LightningModule) -> None:
        writer = next((lg.experiment for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)
        if writer is None:
            rank_zero_warn("VideoLogger needs a TensorBoardLogger; no video logged")
            return
        was_training = pl_module.training
        pl_module.eval()  # dropout off: show the model that validation scored
        try:
            tag, video = self.video(trainer, pl_module, self._batch)
        finally:
            pl_module.train(was_training)
        log_video(writer, tag, video, trainer.global_step, self.fps)
        self._batch_logged = True

    @torch.no_grad()
    def video(self, trainer: Trainer, pl_module: LightningModule, batch: dict[str, torch.Tensor]):
        """(tag, video (N, 3, T, H, W') float in [-1, 1]) for the stage `batch` comes from."""
        if "video" in batch:
            return VQVAE_TAG, reconstruction_panels(pl_module.vqvae, batch["video"].to(pl_module.device))
        vqvae = self.frozen_vqvae(trainer, pl_module.device)
        generator = torch.Generator().manual_seed(self.seed)
        if "target_top" in batch:
            truth, samples, num_given = self.sample_top(pl_module.prior, vqvae, batch, generator)
            return TOP_TAG, panels_video(truth, samples, num_given)
        num_given_slices = pl_module.code_spec.given_bottom_shape[0]
        truth, samples, num_given = self.sample_bottom(pl_module.prior, vqvae, batch, num_given_slices, generator)
        return BOTTOM_TAG, panels_video(truth, samples, num_given)

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """A prior's VQ-VAE is checked before training, not at the first logging validation hundreds of steps in."""
        if hasattr(pl_module, "prior"):
            self.vqvae_path(trainer)

    def vqvae_path(self, trainer: Trainer) -> Path:
        """The checkpoint of the VQ-VAE that decodes the prior's codes: one clear error if it is unknown or gone."""
        checkpoint = self.vqvae_checkpoint or getattr(trainer.datamodule, "vqvae_checkpoint", None)
        if checkpoint is None:
            raise ValueError("VideoLogger needs the VQ-VAE that decodes the prior's codes: set vqvae_checkpoint")
        if not Path(checkpoint).is_file():
            raise FileNotFoundError(
                f"VideoLogger: the VQ-VAE checkpoint {checkpoint} (the code cache's, unless vqvae_checkpoint names "
                f"another) does not exist, seen from {Path.cwd()}: run from the folder `vqvideo precompute` ran in, "
                "or set the VideoLogger's vqvae_checkpoint in the config")
        return Path(checkpoint)

    def frozen_vqvae(self, trainer: Trainer, device: torch.device):
        if self._vqvae is None:
            from vqvideo.lit.vqvae_module import load_vqvae

            self._vqvae = load_vqvae(str(self.vqvae_path(trainer)))
        return self._vqvae.to(device)

    def _repeat(self, codes: torch.Tensor) -> torch.Tensor:
        return codes.repeat_interleave(self.num_samples, dim=0)  # (N*K, ...)

    def sample_top(self, prior, vqvae, batch: dict[str, torch.Tensor], generator: torch.Generator):
        """→ truth (N, 3, T, H, W), samples (N, K, 3, T, H, W), number of given frames; top level alone."""
        given_top, given_bottom, target_top = batch["given_top"], batch["given_bottom"], batch["target_top"]
        future = self.sampler.sample_top(prior, self._repeat(given_top), self._repeat(given_bottom),
                                         target_top.shape[1], self.options, generator)  # (N*K, Tp, Ht, Wt)
        truth = vqvae.decode_top_only(torch.cat([given_top, target_top], dim=1))
        decoded = vqvae.decode_top_only(torch.cat([self._repeat(given_top), future], dim=1))
        num_given = round(given_top.shape[1] / (given_top.shape[1] + target_top.shape[1]) * truth.shape[2])
        return truth, rearrange(decoded, "(n k) c t h w -> n k c t h w", k=self.num_samples), num_given

    def sample_bottom(self, prior, vqvae, batch: dict[str, torch.Tensor], num_given: int, generator: torch.Generator):
        """→ truth, samples, number of given frames: future bottom slices sampled given the true top codes."""
        top_codes, bottom_codes = batch["top_codes"], batch["bottom_codes"]
        sampled = self.sampler.sample_bottom(prior, self._repeat(top_codes), self._repeat(bottom_codes[:, :num_given]),
                                             bottom_codes.shape[1] - num_given, self.options, generator)
        truth = vqvae.decode_codes(top_codes, bottom_codes)
        decoded = vqvae.decode_codes(self._repeat(top_codes), sampled)
        samples = rearrange(decoded, "(n k) c t h w -> n k c t h w", k=self.num_samples)
        return truth, samples, round(num_given / bottom_codes.shape[1] * truth.shape[2])


def reconstruction_panels(vqvae, video: torch.Tensor) -> torch.Tensor:
    """video (N, 3, T, H, W) → (N, 3, T, H, 3W): input | reconstruction | top-only reconstruction."""
    codes = vqvae.encode(video)
    reconstruction = vqvae.decode_codes(*codes).to(video.dtype)
    top_only = vqvae.decode_top_only(codes.top).to(video.dtype)
    return torch.cat([video, reconstruction, top_only], dim=-1).clamp(-1, 1)


def panels_video(truth: torch.Tensor, samples: torch.Tensor, num_given_frames: int) -> torch.Tensor:
    """truth (N, 3, T, H, W), samples (N, K, 3, T, H, W) in [-1, 1] → (N, 3, T, H', W') one panel per clip."""
    panels = [prediction_panel(video_to_uint8(clip), video_to_uint8(clip_samples), num_given_frames)
              for clip, clip_samples in zip(truth, samples)]
    stacked = torch.from_numpy(np.stack(panels)).float()  # (N, T, H', W', 3) in [0, 255]
    return rearrange(stacked, "n t h w c -> n c t h w") / 127.5 - 1.0
