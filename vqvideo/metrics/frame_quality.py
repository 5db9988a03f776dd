"""Frame quality of predicted video against ground truth: per-frame PSNR and SSIM (torchmetrics), and the
copy-last-given-frame baseline every prediction should beat.

Convention for every function here: videos are uint8 (N, T, H, W, 3) tensors or NumPy arrays, the layout of
the MP4s, the I3D input and the codec baseline, so all PSNRs in a report are on the same 8-bit pixels
(`vqvideo.video_io.video_to_uint8` turns model output (B, 3, T, H, W) in [-1, 1] into this layout).
"""

from __future__ import annotations

from functools import partial
from typing import Callable, NamedTuple

import numpy as np
import torch
from torch import Tensor
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

DATA_RANGE = 255.0
PSNR_CAP = 100.0  # dB counted for an exact frame (PSNR inf), so means over frames and clips stay finite
SSIM_MIN_SIZE = 11  # torchmetrics' default Gaussian window


class FrameQuality(NamedTuple):
    """psnr: (N, T) float64 dB of each clip's each frame (inf where a frame is exact); ssim: (N, T) float64.

    SSIM: torchmetrics defaults (11x11 Gaussian window, sigma 1.5, k1 0.01, k2 0.03) on RGB, data range 255."""

    psnr: Tensor
    ssim: Tensor

    @property
    def psnr_per_frame(self) -> Tensor:
        """(T,) mean PSNR over clips, per frame index."""
        return self.psnr.mean(dim=0)

    @property
    def ssim_per_frame(self) -> Tensor:
        """(T,) mean SSIM over clips, per frame index."""
        return self.ssim.mean(dim=0)

    @property
    def psnr_per_clip(self) -> Tensor:
        """(N,) mean of a clip's per-frame PSNRs (not the PSNR of the clip's total MSE)."""
        return self.psnr.mean(dim=1)

    @property
    def ssim_per_clip(self) -> Tensor:
        """(N,) mean of a clip's per-frame SSIMs."""
        return self.ssim.mean(dim=1)


def as_uint8_videos(videos: Tensor | np.ndarray, name: str) -> Tensor:
    """videos as a uint8 (N, T, H, W, 3) tensor (NumPy arrays shared, not copied), or a ValueError naming `name`."""
    videos = torch.as_tensor(videos)
    if videos.dtype != torch.uint8 or videos.dim() != 5 or videos.shape[-1] != 3:
        raise ValueError(f"{name} must be uint8 (N, T, H, W, 3), got {videos.dtype} {tuple(videos.shape)}; "
                         "model output (B, 3, T, H, W) in [-1, 1] converts with vqvideo.video_io.video_to_uint8")
    return videos


def _check_pair(predictions: Tensor | np.ndarray, targets: Tensor | np.ndarray) -> tuple[Tensor, Tensor]:
    predictions = as_uint8_videos(predictions, "predictions")
    targets = as_uint8_videos(targets, "targets")
    if predictions.shape != targets.shape:
        raise ValueError(f"predictions {tuple(predictions.shape)} and targets {tuple(targets.shape)} differ")
    return predictions, targets


@torch.no_grad()
def _per_frame(score: Callable[[Tensor, Tensor], Tensor], predictions: Tensor, targets: Tensor,
               batch_size: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """score((F, 3, H, W), (F, 3, H, W)) -> (F,) applied to every frame, batch_size frames at a time, inputs cast to
    `dtype` -> (N, T) float64."""
    flat_predictions = predictions.flatten(0, 1).permute(0, 3, 1, 2)  # (N*T, 3, H, W)
    flat_targets = targets.flatten(0, 1).permute(0, 3, 1, 2)
    scores = [score(flat_predictions[start:start + batch_size].to(dtype),
                    flat_targets[start:start + batch_size].to(dtype))
              for start in range(0, flat_targets.shape[0], batch_size)]
    return torch.cat(scores).double().reshape(targets.shape[:2])


def per_frame_psnr(predictions: Tensor | np.ndarray, targets: Tensor | np.ndarray, batch_size: int = 256) -> Tensor:
    """PSNR (dB, data range 255; inf for an exact frame) of every frame: uint8 (N, T, H, W, 3) pair -> (N, T)
    float64."""
    predictions, targets = _check_pair(predictions, targets)
    return _per_frame(partial(peak_signal_noise_ratio, data_range=DATA_RANGE, reduction="none", dim=(1, 2, 3)),
                      predictions, targets, batch_size)


def per_frame_ssim(predictions: Tensor | np.ndarray, targets: Tensor | np.ndarray, batch_size: int = 256) -> Tensor:
    """SSIM (torchmetrics defaults, data range 255) of every frame: uint8 (N, T, H, W, 3) pair, H, W >= 11 ->
    (N, T) float64, computed in float32 like torchmetrics' SSIM class: its grouped Gaussian convolutions are ~10x
    slower in float64 on CPU (which would dominate an eval of many clips), for differences around 1e-7."""
    predictions, targets = _check_pair(predictions, targets)
    if min(targets.shape[2:4]) < SSIM_MIN_SIZE:
        raise ValueError(f"SSIM needs frames of at least {SSIM_MIN_SIZE}x{SSIM_MIN_SIZE}, "
                         f"got {tuple(targets.shape[2:4])}")
    return _per_frame(partial(structural_similarity_index_measure, data_range=DATA_RANGE, reduction="none"),
                      predictions, targets, batch_size, torch.float32)


def frame_quality(predictions: Tensor | np.ndarray, targets: Tensor | np.ndarray,
                  batch_size: int = 256) -> FrameQuality:
    """Per-frame PSNR and SSIM of predictions against targets, both uint8 (N, T, H, W, 3) of equal shape,
    H, W >= 11. Pass only the frames to score (e.g. the 12 predicted ones). batch_size: frames per call."""
    return FrameQuality(per_frame_psnr(predictions, targets, batch_size),
                        per_frame_ssim(predictions, targets, batch_size))


def copy_last_frame_video(videos: Tensor | np.ndarray, num_given: int) -> Tensor:
    """The copy-last-given-frame baseline: videos (N, T, H, W, 3) uint8 -> (N, T, H, W, 3) uint8 whose first
    `num_given` frames are the given ones and every later frame repeats frame `num_given - 1`."""
    videos = as_uint8_videos(videos, "videos")
    if not 1 <= num_given <= videos.shape[1]:
        raise ValueError(f"num_given must be in 1..{videos.shape[1]} (the clip length), got {num_given}")
    baseline = videos.clone()
    baseline[:, num_given:] = videos[:, num_given - 1:num_given]
    return baseline
