"""The samples' error split into the prior's spread and its bias (`vqvideo.metrics.sample_spread`), and its
report section: exact on constructed samples, calibrated when the target is one more sample."""

from __future__ import annotations

import numpy as np
import pytest

from vqvideo.evaluation.diagnostics import sample_spread_section
from vqvideo.metrics.frame_quality import PSNR_CAP
from vqvideo.metrics.sample_spread import mse_to_psnr, sample_spread


def noisy(rng: np.random.Generator, mean: float, sigma: float, shape: tuple[int, ...]) -> np.ndarray:
    return np.clip(np.rint(rng.normal(mean, sigma, shape)), 0, 255).astype(np.uint8)


def test_error_is_bias_plus_spread():
    rng = np.random.default_rng(0)
    target = np.full((3, 32, 32, 3), 100, np.uint8)
    samples = noisy(rng, 106.0, 10.0, (4, 3, 32, 32, 3))  # bias 6 grey levels, spread sigma 10
    measured = sample_spread(samples, target)
    assert measured.error.shape == measured.spread.shape == (3,)
    np.testing.assert_allclose(measured.spread, 100.0, rtol=0.05)
    np.testing.assert_allclose(measured.error - measured.spread, 36.0, atol=4.0)


def test_the_spread_is_the_unbiased_variance_of_two_samples():
    target = np.zeros((1, 1, 1, 3), np.uint8)
    samples = np.stack([np.full((1, 1, 1, 3), 10, np.uint8), np.full((1, 1, 1, 3), 30, np.uint8)])
    measured = sample_spread(samples, target)
    assert measured.error[0] == pytest.approx((100 + 900) / 2)
    assert measured.spread[0] == pytest.approx(200.0)  # (10² + 10²) / (2 - 1): ddof 1, not the biased 100


def test_one_sample_has_no_spread_and_no_section():
    samples, target = np.zeros((1, 2, 4, 4, 3), np.uint8), np.ones((2, 4, 4, 3), np.uint8)
    measured = sample_spread(samples, target)
    assert np.isnan(measured.spread).all() and measured.error[0] == 1.0
    record = {"spread.variance": measured.spread, "spread.error_vs_truth": measured.error,
              "spread.error_vs_reconstruction": measured.error}
    assert sample_spread_section([record]) is None


def test_a_target_drawn_like_the_samples_reads_as_calibrated():
    rng = np.random.default_rng(1)
    records = []
    for _ in range(8):  # clips: each its own mean picture, target and samples drawn alike around it
        mean = rng.uniform(60, 190, (2, 16, 16, 3))
        draws = np.clip(np.rint(mean + rng.normal(0, 12.0, (5, 2, 16, 16, 3))), 0, 255).astype(np.uint8)
        target, samples = draws[0], draws[1:]
        measured = sample_spread(samples, target)
        records.append({"spread.variance": measured.spread, "spread.error_vs_truth": measured.error,
                        "spread.error_vs_reconstruction": measured.error})
    section = sample_spread_section(records)
    assert section["truth"]["bias_to_spread"] == pytest.approx([1.0, 1.0], abs=0.1)
    spread_db = 10 * np.log10(255 ** 2 / 144.0)
    assert section["spread_psnr"] == pytest.approx([spread_db] * 2, abs=0.3)
    # a calibrated prior's samples score 3 dB below its pixel mean
    gap = np.subtract(section["truth"]["mean_psnr"], section["truth"]["samples_psnr"])
    assert gap == pytest.approx([3.0, 3.0], abs=0.4)


def test_samples_that_agree_on_a_wrong_picture_read_as_biased():
    rng = np.random.default_rng(2)
    target = noisy(rng, 120.0, 30.0, (2, 16, 16, 3))
    samples = np.clip(target.astype(np.float64) + 20 + rng.normal(0, 2.0, (4, 2, 16, 16, 3)), 0, 255)
    measured = sample_spread(np.rint(samples).astype(np.uint8), target)
    record = {"spread.variance": measured.spread, "spread.error_vs_truth": measured.error,
              "spread.error_vs_reconstruction": measured.error}
    ratios = sample_spread_section([record])["truth"]["bias_to_spread"]
    assert all(ratio > 50 for ratio in ratios)  # about 20² / 2²


def test_psnr_of_zero_or_negative_error_is_capped():
    psnr = mse_to_psnr(np.array([0.0, -1.0, 65025.0, np.nan]))
    assert psnr[0] == psnr[1] == PSNR_CAP and psnr[2] == pytest.approx(0.0) and np.isnan(psnr[3])


def test_mismatched_frames_are_refused():
    with pytest.raises(ValueError, match="matching frames"):
        sample_spread(np.zeros((2, 3, 4, 4, 3), np.uint8), np.zeros((2, 4, 4, 3), np.uint8))
