"""FVD: the Fréchet distance against SciPy, the 64-px downscale, the two preprocessing protocols value by value, I3D
features, folds of clips and the protocol card."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from data_videos import source_frames

from vqvideo.metrics.fvd import (DOWNSCALE, downscale, frechet_distance, frechet_distance_folds,
                                 fvd_protocol_card, i3d_features, preprocess_for_i3d, summarize_folds)
from vqvideo.metrics.i3d import random_i3d


def scipy_frechet(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """The textbook formula with SciPy's sqrtm of S_a S_b, and sqrtm's relative residual (is SciPy right?)."""
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    product = cov_a @ cov_b
    root = scipy.linalg.sqrtm(product)
    residual = np.linalg.norm(root @ root - product) / np.linalg.norm(product)
    value = ((mean_a - mean_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(root).real
    return float(value), float(residual)


def scipy_frechet_low_rank(a: np.ndarray, b: np.ndarray) -> float:
    """For N < D: with S = X^T X (X centred rows / sqrt(N - 1)), tr sqrt(S_a^1/2 S_b S_a^1/2) is the sum of
    singular values of X_a X_b^T, an N_a x N_b matrix (SciPy's svdvals; no matrix square root)."""
    centred_a = (a - a.mean(0)) / np.sqrt(len(a) - 1)
    centred_b = (b - b.mean(0)) / np.sqrt(len(b) - 1)
    trace_sqrt = scipy.linalg.svdvals(centred_a @ centred_b.T).sum()
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + (centred_a ** 2).sum() + (centred_b ** 2).sum()
                 - 2 * trace_sqrt)


def test_frechet_distance_matches_scipy_well_conditioned():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 24))
    b = rng.normal(size=(280, 24)) @ rng.normal(size=(24, 24)) * 0.5 + 0.3
    reference, residual = scipy_frechet(a, b)
    assert residual < 1e-10
    assert frechet_distance(a, b) == pytest.approx(reference, rel=1e-9)
    assert frechet_distance(torch.from_numpy(a).float(), b) == pytest.approx(reference, rel=1e-5)  # float32 input


def test_frechet_distance_ill_conditioned_covariances():
    rng = np.random.default_rng(1)
    dim = 48
    rotation, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    scales = np.logspace(0, -6, dim)  # covariance eigenvalues over 12 orders of magnitude
    a = (rng.normal(size=(400, dim)) * scales) @ rotation.T
    b = (rng.normal(size=(400, dim)) * scales[::-1]) @ rotation.T + 1e-3
    reference, residual = scipy_frechet(a, b)
    assert np.linalg.cond(np.cov(a, rowvar=False)) > 1e10
    assert residual < 1e-6  # SciPy is right here
    assert frechet_distance(a, b) == pytest.approx(reference, rel=1e-3)
    assert frechet_distance(a, b) == pytest.approx(scipy_frechet_low_rank(a, b), rel=1e-6)


def test_frechet_distance_with_fewer_samples_than_dimensions():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(20, 100)) * 2.0
    b = rng.normal(size=(30, 100)) + 0.1
    assert frechet_distance(a, b) == pytest.approx(scipy_frechet_low_rank(a, b), rel=1e-9)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="N >= 2"):
        frechet_distance(a[:1], b)


def numpy_bilinear(frame: np.ndarray, out_height: int, out_width: int) -> np.ndarray:
    """Bilinear resize with half-pixel centres (align_corners=False), edges clamped, no antialiasing."""

    def taps(size_in: int, size_out: int):
        source = np.maximum((np.arange(size_out) + 0.5) * size_in / size_out - 0.5, 0.0)
        low = np.floor(source).astype(int)
        return low, np.minimum(low + 1, size_in - 1), source - low

    rows, rows_next, row_weight = taps(frame.shape[0], out_height)
    cols, cols_next, col_weight = taps(frame.shape[1], out_width)
    frame = frame.astype(np.float64)
    top = frame[rows][:, cols] * (1 - col_weight[:, None]) + frame[rows][:, cols_next] * col_weight[:, None]
    below = frame[rows_next][:, cols] * (1 - col_weight[:, None]) + frame[rows_next][:, cols_next] * col_weight[:, None]
    return top * (1 - row_weight[:, None, None]) + below * row_weight[:, None, None]


def synthetic_videos(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(1, 9, height, width, 3), dtype=np.uint8)


def test_resize_protocol_values():
    for height, width in ((300, 500), (24, 40)):  # downsampling (antialias would differ) and upsampling
        videos = synthetic_videos(height, width)
        out = preprocess_for_i3d(videos, "resize")
        assert out.shape == (1, 3, 9, 224, 224) and out.dtype == torch.float32
        expected = numpy_bilinear(videos[0, 4], 224, 224) * 2 / 255 - 1  # (224, 224, 3)
        assert np.abs(out[0, :, 4].permute(1, 2, 0).numpy() - expected).max() < 3e-4  # float32 source coordinates
    extremes = np.zeros((1, 9, 32, 32, 3), dtype=np.uint8)
    extremes[..., 1] = 255
    out = preprocess_for_i3d(torch.from_numpy(extremes), "resize")
    assert torch.allclose(out[0, 0], torch.tensor(-1.0), atol=1e-6)
    assert torch.allclose(out[0, 1], torch.tensor(1.0), atol=1e-6)


def test_short_side_crop_protocol_values():
    for height, width, resized in ((100, 150, (224, 336)), (150, 100, (336, 224)), (64, 64, (224, 224))):
        videos = synthetic_videos(height, width, seed=height)
        out = preprocess_for_i3d(videos, "short_side_crop")
        top, left = (resized[0] - 224) // 2, (resized[1] - 224) // 2
        expected = numpy_bilinear(videos[0, 2], *resized)[top:top + 224, left:left + 224] * 2 / 255 - 1
        assert out.shape == (1, 3, 9, 224, 224)
        assert np.abs(out[0, :, 2].permute(1, 2, 0).numpy() - expected).max() < 3e-4, (height, width)
    with pytest.raises(ValueError, match="unknown FVD protocol"):
        preprocess_for_i3d(synthetic_videos(8, 8), "center")
    with pytest.raises(ValueError, match="uint8"):
        preprocess_for_i3d(synthetic_videos(8, 8).astype(np.float32), "resize")


class PooledColour(torch.nn.Module):
    """A stand-in feature model: 400 fixed mixes of the clip's mean colour per frame (cheap, deterministic)."""

    def __init__(self) -> None:
        super().__init__()
        self.mix = torch.nn.Parameter(torch.randn(3 * 9, 400, generator=torch.Generator().manual_seed(0)))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        assert not torch.is_grad_enabled() and video.shape[1:] == (3, 9, 224, 224)
        return video.mean(dim=(3, 4)).flatten(1) @ self.mix


def test_i3d_features_batches_and_inputs():
    videos = np.random.default_rng(0).integers(0, 256, size=(5, 9, 20, 28, 3), dtype=np.uint8)
    model = PooledColour().train()
    one_by_one = i3d_features(model, videos, batch_size=1)
    assert one_by_one.shape == (5, 400) and one_by_one.dtype == torch.float32 and not model.training
    assert torch.allclose(i3d_features(model, torch.from_numpy(videos), batch_size=3), one_by_one, atol=1e-5)
    assert not torch.allclose(i3d_features(model, videos, "short_side_crop"), one_by_one, atol=1e-3)
    with pytest.raises(ValueError, match="at least 9 frames"):
        i3d_features(model, videos[:, :6])


def small_clip(which: int) -> torch.Tensor:
    frames = torch.from_numpy(np.stack(source_frames(9, which=which))).permute(0, 3, 1, 2).float()
    return F.interpolate(frames, size=(32, 32), mode="area").round().to(torch.uint8).permute(0, 2, 3, 1)


def test_fvd_of_a_set_with_itself_is_zero_and_grows_with_noise():
    clips = torch.stack([small_clip(which) for which in (0, 2)])  # (2, 9, 32, 32, 3): bikes, carphone
    model = random_i3d()
    real = i3d_features(model, clips)
    generator = torch.Generator().manual_seed(0)
    distances = [frechet_distance(real, real)]
    for sigma in (12.0, 60.0):
        noisy = (clips.float() + sigma * torch.randn(clips.shape, generator=generator)).clamp(0, 255).round()
        distances.append(frechet_distance(real, i3d_features(model, noisy.to(torch.uint8))))
    assert distances[0] < 1e-6 * distances[2]
    assert distances[0] < distances[1] < distances[2], distances


def test_folds_keep_each_clips_samples_together():
    rng = np.random.default_rng(4)
    real, fake = rng.normal(size=(5, 1, 5)), rng.normal(size=(5, 3, 5)) + 0.5  # 5 clips, 3 samples each
    folded = frechet_distance_folds(real, fake, folds=2)
    # clips 0-2 and 3-4 (the first fold one clip larger); rows of one clip never split between folds
    per_fold = (frechet_distance(real[:3].reshape(-1, 5), fake[:3].reshape(-1, 5)),
                frechet_distance(real[3:].reshape(-1, 5), fake[3:].reshape(-1, 5)))
    assert folded.per_fold == per_fold  # the same float64 arithmetic, to the last bit
    assert folded.mean == pytest.approx(np.mean(per_fold))
    assert folded.std == pytest.approx(np.std(per_fold, ddof=1))
    assert str(summarize_folds([64.3, 62.0])) == "63.15 ± 1.63"
    assert summarize_folds([5.0]).std is None and str(summarize_folds([5.0])) == "5.00"
    with pytest.raises(ValueError, match="3 folds need >= 6 clips"):
        frechet_distance_folds(real, fake, folds=3)
    with pytest.raises(ValueError, match="same C clips"):
        frechet_distance_folds(real[:4], fake, folds=2)


def test_downscale_is_antialiased_and_leaves_the_target_size_alone():
    stripes = torch.zeros(1, 2, 128, 128, 3, dtype=torch.uint8)
    stripes[:, :, :, 0::4] = stripes[:, :, :, 1::4] = 255  # 2-px columns: plain bilinear keeps them at full contrast
    small = downscale(stripes, 64)
    assert small.shape == (1, 2, 64, 64, 3) and small.dtype == torch.uint8
    frames = stripes[0].permute(0, 3, 1, 2).float()
    expected = F.interpolate(frames, size=(64, 64), mode="bilinear", align_corners=False, antialias=True)
    assert torch.equal(small[0], expected.round().to(torch.uint8).permute(0, 2, 3, 1))
    assert small.int().max() - small.int().min() < 200  # plain bilinear here: 0 and 255
    assert downscale(small, 64) is small
    card = fvd_protocol_card(protocol="resize", i3d_path=None, num_real=0, num_fake=0, num_frames=16, folds=2,
                             seeds=[0], source_resolution=128)
    assert card["downscale"] == DOWNSCALE and "antialias=True" in card["downscale"]


def test_protocol_card(tmp_path):
    weights = tmp_path / "i3d_pretrained_400.pt"
    torch.save({"x": torch.zeros(2)}, weights)
    card = fvd_protocol_card(protocol="resize", i3d_path=weights, num_real=100, num_fake=300, num_frames=16,
                             folds=2, seeds=[0], source_resolution=64)
    assert card["i3d_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert card["stand_in_weights"] is False and card["i3d_format"].startswith("state dict")
    assert "align_corners=False" in card["resizing"] and card["input_range"].startswith("[-1, 1]")
    assert (card["real_count"], card["fake_count"], card["frames"], card["folds"]) == (100, 300, 16, 2)
    stand_in = fvd_protocol_card(protocol="short_side_crop", i3d_path=None, num_real=4, num_fake=4, num_frames=16,
                                 folds=1, seeds=[0, 1])
    assert stand_in["stand_in_weights"] is True and stand_in["i3d_sha256"] is None
    assert "meaningless" in stand_in["weights_label"] and "center crop" in stand_in["resizing"]
