"""The x264 baseline: the budget formula, bits under budget, PSNR rising with budget, odd sizes, an impossible
budget, and which bytes count."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from data_videos import source_frames

from vqvideo.metrics.codec import _slice_and_header_bits, code_budget_bits, x264_at_budget


def demo_clip(height: int = 64, width: int = 64) -> np.ndarray:
    frames = torch.from_numpy(np.stack(source_frames(16, which=0))).permute(0, 3, 1, 2).float()
    small = F.interpolate(frames, size=(height, width), mode="area")
    return small.round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def test_budget_is_codes_times_log2_codebook():
    assert code_budget_bits([(4, 8, 8), (8, 16, 16)], [512, 512]) == 9 * (256 + 2048)
    assert code_budget_bits([(2, 2)], [1024]) == 40


def test_bits_fit_the_budget_and_psnr_rises_with_it():
    clip = demo_clip()
    budget = code_budget_bits([(4, 8, 8), (8, 16, 16)], [512, 512])
    results = [x264_at_budget(clip, budget * factor) for factor in (0.25, 1.0, 2.0)]
    for result in results:
        assert result.fits and result.bits <= result.budget_bits
        assert result.decoded.shape == clip.shape and result.decoded.dtype == np.uint8
        assert result.header_bits > 0
    assert results[0].psnr < results[1].psnr < results[2].psnr
    assert results[0].qp > results[1].qp > results[2].qp
    tighter = x264_at_budget(clip, results[1].bits - 1)  # one QP step down must not fit: smallest QP found
    assert tighter.qp > results[1].qp
    again = x264_at_budget(clip, budget)  # deterministic (one encoder thread)
    assert (again.bits, again.qp) == (results[1].bits, results[1].qp)
    assert np.array_equal(again.decoded, results[1].decoded)


def test_odd_sizes_and_an_impossible_budget():
    clip = demo_clip(33, 47)
    result = x264_at_budget(clip, 8000)
    assert result.decoded.shape == clip.shape and result.fits and result.psnr > 20
    hopeless = x264_at_budget(clip, 10)
    assert (hopeless.fits, hopeless.qp) == (False, 51) and hopeless.bits > 10 and np.isfinite(hopeless.psnr)


def test_only_coded_slices_count():
    start, short_start = b"\x00\x00\x00\x01", b"\x00\x00\x01"
    sps, pps, sei = b"\x67" + b"\x11" * 9, b"\x68" + b"\x22" * 3, b"\x06" + b"\x33" * 600
    idr, slice_p = b"\x65" + b"\x44" * 40, b"\x41" + b"\x55" * 20
    first = start + sps + start + pps + short_start + sei + short_start + idr
    second = start + slice_p
    bits, header_bits = _slice_and_header_bits([first, second])
    assert bits == 8 * (len(idr) + len(slice_p))
    assert bits + header_bits == 8 * (len(first) + len(second))
