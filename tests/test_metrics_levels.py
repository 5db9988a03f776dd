"""Code usage and perplexity on hand-made codes; the mean-colour baseline PSNR on a hand-made clip."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vqvideo.metrics.levels import code_usage, code_usage_from_counts, mean_colour_psnr, mean_colour_video


def test_code_usage_by_hand():
    usage = code_usage(torch.tensor([[0, 0], [0, 1]]), num_codes=4)
    entropy = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))
    assert (usage.used, usage.fraction_used) == (2, 0.5)
    assert usage.entropy_bits == pytest.approx(entropy)
    assert usage.perplexity == pytest.approx(2 ** entropy) == pytest.approx(1.7548, abs=1e-4)
    assert usage.counts.tolist() == [3, 1, 0, 0]
    uniform = code_usage(np.arange(16) % 8, num_codes=8)
    assert (uniform.perplexity, uniform.used, uniform.fraction_used) == (pytest.approx(8.0), 8, 1.0)
    collapsed = code_usage(torch.full((5, 3), 7), num_codes=512)
    assert (collapsed.perplexity, collapsed.used, collapsed.entropy_bits) == (1.0, 1, 0.0)
    halves = code_usage(torch.tensor([0, 0]), 4).counts + code_usage(torch.tensor([0, 1]), 4).counts
    merged = code_usage_from_counts(halves)  # histograms summed over batches or ranks
    assert merged.perplexity == pytest.approx(usage.perplexity)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        code_usage(torch.tensor([0, 4]), num_codes=4)


def test_mean_colour_psnr_by_hand():
    clip = np.zeros((1, 2, 16, 16, 3), dtype=np.uint8)
    clip[0, 1, ..., 0] = 100  # red: 0 then 100 -> mean 50, error 50 everywhere
    clip[0, :, ..., 1] = 30  # green: constant -> no error
    clip[0, 1, ..., 2] = 60  # blue: 0 then 60 -> mean 30, error 30 everywhere
    assert mean_colour_video(clip)[0, 0, 0, 0].tolist() == [50, 30, 30]
    mse = (50 ** 2 + 0 + 30 ** 2) / 3
    assert mean_colour_psnr(clip).tolist() == pytest.approx([10 * math.log10(255 ** 2 / mse)])
    two_clips = np.concatenate([clip, np.full_like(clip, 9)])
    psnr = mean_colour_psnr(torch.from_numpy(two_clips))
    assert psnr.shape == (2,) and math.isinf(psnr[1].item())  # a flat clip is its own mean colour
