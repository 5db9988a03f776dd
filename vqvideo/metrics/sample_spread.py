"""The samples' error split into the prior's spread and its bias.

K samples s_1..s_K of one clip and a target r (the ground truth or the VQ-VAE's reconstruction), per pixel:
E(s - r)² = (μ - r)² + E(s - μ)², with μ the prior's pixel mean (the average of infinitely many decoded samples).
The second term, the spread, is estimated without bias by the samples' variance about their own average (ddof 1);
the first, the bias, is then the error minus the spread: what the prior's pixel mean would score.

If the target were one more draw from the prior (a calibrated prior), the bias would equal the spread, and samples
would score 3 dB below the prior's mean: the price of sampling an uncertain future. A bias far above the spread
means samples that agree with each other more than with the target (confidently wrong); far below, samples that
spread more than their average errs (lowering the temperature helps).

Videos are uint8 (K, T, H, W, 3) / (T, H, W, 3) as in `vqvideo.metrics.frame_quality`; errors are mean squared
8-bit differences per frame (over pixels and channels), so they add over clips before they become dB.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from vqvideo.metrics.frame_quality import DATA_RANGE, PSNR_CAP


class SampleSpread(NamedTuple):
    """Per frame (T,) float64 mean squared errors: error (each sample against the target, mean over the K samples)
    and spread (the samples' unbiased variance about their average; NaN for K = 1)."""

    error: np.ndarray
    spread: np.ndarray


def sample_spread(samples: np.ndarray, target: np.ndarray) -> SampleSpread:
    """samples: (K, T, H, W, 3) uint8; target: (T, H, W, 3) uint8 → per-frame error and spread (T,) float64."""
    if samples.dtype != np.uint8 or target.dtype != np.uint8 or samples.shape[1:] != target.shape:
        raise ValueError(f"samples (K, T, H, W, 3) and target (T, H, W, 3) must be uint8 of matching frames, got "
                         f"{samples.dtype} {samples.shape} and {target.dtype} {target.shape}")
    error, spread = np.empty(target.shape[0]), np.full(target.shape[0], np.nan)
    for frame in range(target.shape[0]):  # frame by frame: float64 copies of K whole 256 px clips cost GBs
        pixels = samples[:, frame].astype(np.float64)  # (K, H, W, 3)
        error[frame] = ((pixels - target[frame]) ** 2).mean()
        if samples.shape[0] > 1:
            spread[frame] = pixels.var(axis=0, ddof=1).mean()
    return SampleSpread(error, spread)


def mse_to_psnr(mse: np.ndarray) -> np.ndarray:
    """dB of mean squared 8-bit errors (capped at PSNR_CAP where the error is zero or below: an estimated bias
    can come out negative when it is far smaller than the spread)."""
    mse = np.asarray(mse, np.float64)
    with np.errstate(divide="ignore"):
        psnr = 10.0 * np.log10(DATA_RANGE ** 2 / np.where(mse > 0, mse, 0.0))
    return np.minimum(np.where(np.isnan(mse), np.nan, psnr), PSNR_CAP)
