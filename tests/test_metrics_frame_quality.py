"""Per-frame PSNR/SSIM against hand calculations and torchmetrics' own classes; the copy-last-frame baseline."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from vqvideo.metrics.frame_quality import copy_last_frame_video, frame_quality, per_frame_psnr


def test_psnr_per_clip_and_frame_by_hand():
    targets = np.zeros((2, 3, 16, 16, 3), dtype=np.uint8)
    predictions = targets.copy()
    errors = np.array([[1, 4, 16], [2, 8, 32]])  # a constant error per clip and frame
    predictions += errors[:, :, None, None, None].astype(np.uint8)
    quality = frame_quality(predictions, targets)
    expected = 10 * np.log10(255.0 ** 2 / errors.astype(np.float64) ** 2)
    assert quality.psnr.shape == (2, 3) and quality.psnr.dtype == torch.float64
    assert np.allclose(quality.psnr.numpy(), expected, atol=1e-9)
    assert np.allclose(quality.psnr_per_frame.numpy(), expected.mean(axis=0))
    assert np.allclose(quality.psnr_per_clip.numpy(), expected.mean(axis=1))
    assert quality.ssim.shape == (2, 3) and (quality.ssim <= 1).all()


def test_ssim_and_psnr_match_torchmetrics_classes_per_frame():
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 256, size=(2, 4, 24, 20, 3), dtype=np.uint8)
    predictions = np.clip(targets + rng.normal(0, 20, size=targets.shape), 0, 255).astype(np.uint8)
    quality = frame_quality(predictions, targets, batch_size=3)  # batches cross clip boundaries
    clip, frame = 1, 2
    as_image = lambda video: torch.from_numpy(video[clip, frame]).permute(2, 0, 1)[None].double()  # noqa: E731
    ssim = StructuralSimilarityIndexMeasure(data_range=255.0)(as_image(predictions), as_image(targets))
    psnr = PeakSignalNoiseRatio(data_range=255.0)(as_image(predictions), as_image(targets))
    assert quality.ssim[clip, frame].item() == pytest.approx(ssim.item(), rel=1e-6)  # the classes keep float32 state
    assert quality.psnr[clip, frame].item() == pytest.approx(psnr.item(), rel=1e-6)
    identical = frame_quality(targets, targets)
    assert torch.allclose(identical.ssim, torch.ones(2, 4, dtype=torch.float64))
    assert math.isinf(per_frame_psnr(targets, targets)[0, 0].item())


def test_copy_last_frame_baseline():
    videos = torch.arange(2 * 6, dtype=torch.uint8).reshape(2, 6, 1, 1, 1).expand(2, 6, 4, 5, 3).contiguous()
    baseline = copy_last_frame_video(videos, num_given=4)
    assert baseline.shape == videos.shape and baseline.dtype == torch.uint8
    assert torch.equal(baseline[:, :4], videos[:, :4])
    assert torch.equal(baseline[:, 4:], videos[:, 3:4].expand(2, 2, 4, 5, 3))
    assert torch.equal(videos[0, 5], torch.full((4, 5, 3), 5, dtype=torch.uint8))  # the input is left alone
    with pytest.raises(ValueError, match="num_given"):
        copy_last_frame_video(videos, num_given=0)


def test_bad_inputs_say_what_is_expected():
    good = np.zeros((1, 2, 16, 16, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="video_to_uint8"):
        frame_quality(np.zeros((1, 3, 2, 16, 16), dtype=np.float32), good)
    with pytest.raises(ValueError, match="differ"):
        frame_quality(good[:, :1], good)
    with pytest.raises(ValueError, match="at least 11x11"):
        frame_quality(good[:, :, :8, :8], good[:, :, :8, :8])
