"""Per-level diagnostics of a hierarchical VQ-VAE, model-agnostic: how many codes each level uses and its
perplexity, and the mean-colour baseline that top-only reconstructions must beat.

A two-level VQ-VAE can let its decoder ignore the top level: the top codebook collapses to a few codes and the
top codes alone decode to a blur. The cheap tell is top-only reconstruction PSNR beside the PSNR of predicting
each clip's mean colour for every pixel (§3.1's bottom masking exists to prevent this).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from vqvideo.metrics.frame_quality import as_uint8_videos, frame_quality


class CodeUsage(NamedTuple):
    """Usage of one codebook over a set of codes.

    counts: (num_codes,) int64 histogram; used: codes seen at least once; fraction_used: used / num_codes;
    entropy_bits: entropy of the histogram in bits; perplexity: 2 ** entropy_bits = exp(natural entropy), the
    effective number of codes (num_codes when uniform, 1 when collapsed), as the quantizer logs it."""

    num_codes: int
    counts: Tensor
    used: int
    fraction_used: float
    entropy_bits: float
    perplexity: float


def code_usage_from_counts(counts: Tensor) -> CodeUsage:
    """counts: (num_codes,) int histogram (e.g. summed over batches or ranks) -> CodeUsage."""
    counts = torch.as_tensor(counts).detach().cpu().long()
    total = int(counts.sum())
    if counts.dim() != 1 or total == 0:
        raise ValueError(f"counts must be a non-empty 1-D histogram with codes in it, got shape {tuple(counts.shape)} "
                         f"and total {total}")
    probs = counts[counts > 0].double() / total
    entropy_bits = float(-(probs * probs.log2()).sum())
    used = int((counts > 0).sum())
    return CodeUsage(counts.numel(), counts, used, used / counts.numel(), entropy_bits, 2.0 ** entropy_bits)


def code_usage(codes: Tensor | np.ndarray, num_codes: int) -> CodeUsage:
    """codes: any shape, integers in [0, num_codes) (e.g. int64 (B, T', H', W')) -> CodeUsage of the codebook."""
    codes = torch.as_tensor(codes).detach().cpu().long().flatten()
    if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= num_codes):
        raise ValueError(f"codes must lie in [0, {num_codes}), got [{int(codes.min())}, {int(codes.max())}]")
    return code_usage_from_counts(torch.bincount(codes, minlength=num_codes))


def mean_colour_video(videos: Tensor | np.ndarray) -> Tensor:
    """videos: (N, T, H, W, 3) uint8 -> (N, T, H, W, 3) uint8 where every pixel is its clip's mean colour (per
    channel over T, H, W, rounded to the nearest level): the best constant prediction a blur can match."""
    videos = as_uint8_videos(videos, "videos")
    mean = videos.double().mean(dim=(1, 2, 3), keepdim=True).round().to(torch.uint8)  # (N, 1, 1, 1, 3)
    return mean.expand_as(videos).contiguous()


def mean_colour_psnr(videos: Tensor | np.ndarray) -> Tensor:
    """(N,) float64 dB: each clip's mean-colour video scored against the clip, as `frame_quality` scores
    reconstructions (mean of per-frame PSNRs), so the two sit side by side in a report."""
    return frame_quality(mean_colour_video(videos), videos).psnr_per_clip

