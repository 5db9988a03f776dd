"""Fréchet Video Distance (Unterthiner et al. 2018), one function per protocol step:
downscale (`downscale`: the paper's 64 × 64 comparison, §4.2 / Table 2) -> preprocess (`preprocess_for_i3d`) ->
features (`i3d_features`) -> statistics (`feature_stats`) -> distance (`frechet_distance`), with
`frechet_distance_folds` for the paper's mean ± std over disjoint folds of clips (Table 2: 2 folds) and
`fvd_protocol_card` for the report. `vqvideo eval` keeps each clip's features in its record and folds them here.

FVD numbers from different codebases differ by preprocessing alone (resize vs short-side crop, input range,
which I3D file): every number must travel with its protocol card.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vqvideo.files import file_sha256
from vqvideo.metrics.frame_quality import as_uint8_videos
from vqvideo.metrics.i3d import INPUT_SIZE, MIN_FRAMES, NUM_CLASSES, is_torchscript_file

FVD_PROTOCOLS = {
    "resize": "every frame resized to 224x224, bilinear, align_corners=False, no antialias (the TATS "
              "convention; aspect ratio not kept)",
    "short_side_crop": "short side resized to 224 (long side ceil(long * 224 / short)), bilinear, "
                       "align_corners=False, no antialias, then a 224x224 center crop (VideoGPT's resizing; "
                       "VideoGPT's own script then feeds [-0.5, 0.5], this protocol keeps [-1, 1])",
}
FVD_DOWNSCALED = 64  # the paper's FVD comparison resolution (Table 2)
DOWNSCALE = ("frames larger than a result's resolution are first resized to it: bilinear, antialias=True, "
             "align_corners=False, rounded to uint8 (the paper's \"downscale our videos to 64 × 64\"); frames of "
             "that size are used as they are")
INPUT_RANGE = "[-1, 1]: uint8 x -> 2 x / 255 - 1, applied after resizing"
FEATURE = "I3D (Inception-v1, Kinetics-400) logits, 400-d, before softmax, averaged over time"


def _as_uint8_videos(videos: Tensor | np.ndarray) -> Tensor:
    videos = as_uint8_videos(videos, "videos")
    if videos.shape[1] < MIN_FRAMES:
        raise ValueError(f"I3D needs at least {MIN_FRAMES} frames per video, got {videos.shape[1]} "
                         f"(FVD uses 16-frame clips)")
    return videos


def downscale(videos: Tensor, size: int) -> Tensor:
    """uint8 (N, T, H, W, 3) → uint8 (N, T, size, size, 3), bilinear with antialiasing (`DOWNSCALE`); returned
    unchanged when already that size."""
    if videos.shape[2:4] == (size, size):
        return videos
    frames = videos.flatten(0, 1).permute(0, 3, 1, 2).float()  # (N*T, 3, H, W)
    frames = F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    frames = frames.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    return frames.reshape(*videos.shape[:2], size, size, 3)


def preprocess_for_i3d(videos: Tensor | np.ndarray, protocol: str = "resize") -> Tensor:
    """videos: (N, T, H, W, 3) uint8 -> (N, 3, T, 224, 224) float32 in [-1, 1], resized as `protocol` says
    (see FVD_PROTOCOLS), on the videos' device."""
    videos = _as_uint8_videos(videos)
    if protocol not in FVD_PROTOCOLS:
        raise ValueError(f"unknown FVD protocol {protocol!r}: choose one of {', '.join(FVD_PROTOCOLS)}")
    num_videos, num_frames, height, width, _ = videos.shape
    frames = videos.flatten(0, 1).permute(0, 3, 1, 2).float()  # (N*T, 3, H, W) in 0..255
    if protocol == "resize":
        frames = F.interpolate(frames, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    else:
        short = min(height, width)
        long_side = -(-max(height, width) * INPUT_SIZE // short)  # ceil, in integers (no float rounding)
        size = (INPUT_SIZE, long_side) if height <= width else (long_side, INPUT_SIZE)
        frames = F.interpolate(frames, size=size, mode="bilinear", align_corners=False)
        top, left = (size[0] - INPUT_SIZE) // 2, (size[1] - INPUT_SIZE) // 2
        frames = frames[:, :, top:top + INPUT_SIZE, left:left + INPUT_SIZE]
    frames = 2.0 * frames / 255.0 - 1.0
    return frames.reshape(num_videos, num_frames, 3, INPUT_SIZE, INPUT_SIZE).transpose(1, 2).contiguous()


def _model_device(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


@torch.no_grad()
def i3d_features(model: nn.Module, videos: Tensor | np.ndarray, protocol: str = "resize", batch_size: int = 8,
                 progress: bool = False) -> Tensor:
    """I3D features of uint8 videos.

    model: from `load_i3d` / `random_i3d` (any device; it is put in eval mode). videos: (N, T, H, W, 3) uint8,
    T >= 9 (FVD: 16), tensor or NumPy array, any size. Batches of `batch_size` are preprocessed by `protocol`
    and run on the model's device without gradients. Returns (N, 400) float32 on the CPU.
    """
    videos = _as_uint8_videos(videos)
    model.eval()
    device = _model_device(model)
    starts = range(0, videos.shape[0], batch_size)
    if progress:
        from tqdm.auto import tqdm
        starts = tqdm(starts, desc="I3D features", unit="batch")
    features = [model(preprocess_for_i3d(videos[start:start + batch_size].to(device), protocol)).float().cpu()
                for start in starts]
    return torch.cat(features) if features else torch.zeros(0, NUM_CLASSES)


class FeatureStats(NamedTuple):
    """count: number of feature vectors; mean: (D,) float64; cov: (D, D) float64, unbiased (divides by N - 1)."""

    count: int
    mean: Tensor
    cov: Tensor


def feature_stats(features: Tensor | np.ndarray) -> FeatureStats:
    """features: (N, D), N >= 2 -> their mean and unbiased covariance in float64 (centred before the product)."""
    features = torch.as_tensor(features).detach().cpu().double()
    if features.dim() != 2 or features.shape[0] < 2:
        raise ValueError(f"features must be (N >= 2, D), got {tuple(features.shape)}")
    mean = features.mean(dim=0)
    centred = features - mean
    return FeatureStats(features.shape[0], mean, centred.T @ centred / (features.shape[0] - 1))


def _sqrt_psd(matrix: Tensor) -> Tensor:
    """Square root of a symmetric positive semi-definite matrix; eigenvalues within rounding of 0 become 0."""
    eigenvalues, eigenvectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    floor = eigenvalues.abs().max() * matrix.shape[0] * torch.finfo(matrix.dtype).eps
    roots = torch.where(eigenvalues > floor, eigenvalues, torch.zeros_like(eigenvalues)).sqrt()
    return (eigenvectors * roots) @ eigenvectors.T


def trace_sqrt_product(cov_a: Tensor, cov_b: Tensor) -> float:
    """tr sqrt(A^1/2 B A^1/2) for PSD A, B (= tr sqrt(A B)): the sum of singular values of A^1/2 B^1/2.

    Singular values of a product of two PSD roots are well-conditioned even when A and B are singular (N < D)
    or ill-conditioned, where `scipy.linalg.sqrtm(A @ B)` of the non-symmetric product can go wrong."""
    return torch.linalg.svdvals(_sqrt_psd(cov_a) @ _sqrt_psd(cov_b)).sum().item()


def frechet_distance_from_stats(a: FeatureStats, b: FeatureStats) -> float:
    """|mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr sqrt(S_a^1/2 S_b S_a^1/2), float64 (see `FeatureStats`)."""
    if a.mean.shape != b.mean.shape:
        raise ValueError(f"feature sizes differ: {tuple(a.mean.shape)} vs {tuple(b.mean.shape)}")
    mean_a, cov_a, mean_b, cov_b = (t.detach().cpu().double() for t in (a.mean, a.cov, b.mean, b.cov))
    distance = ((mean_a - mean_b) ** 2).sum().item() + cov_a.trace().item() + cov_b.trace().item()
    distance -= 2.0 * trace_sqrt_product(cov_a, cov_b)
    return max(distance, 0.0)  # >= 0 in exact arithmetic; identical sets can round to -1e-12


def frechet_distance(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to features a: (N_a, D) and b: (N_b, D), N >= 2, in float64.

    Correct for N < D (singular covariances) and ill-conditioned covariances; agrees with the SciPy `sqrtm`
    formula wherever SciPy's square root is accurate."""
    return frechet_distance_from_stats(feature_stats(a), feature_stats(b))


class FoldedScore(NamedTuple):
    """A score over disjoint folds: mean, sample standard deviation (ddof 1; None for one fold), each fold's."""

    mean: float
    std: float | None
    per_fold: tuple[float, ...]

    def __str__(self) -> str:
        return f"{self.mean:.2f}" if self.std is None else f"{self.mean:.2f} ± {self.std:.2f}"


def summarize_folds(per_fold: Sequence[float]) -> FoldedScore:
    """Mean ± sample std (ddof 1) of per-fold values; std None for a single fold."""
    values = tuple(float(value) for value in per_fold)
    if not values:
        raise ValueError("no fold values to summarize")
    return FoldedScore(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None, values)


def frechet_distance_folds(real: Tensor | np.ndarray, fake: Tensor | np.ndarray, folds: int = 2) -> FoldedScore:
    """Fréchet distance per fold of clips, summarized. real: (C, R, D), fake: (C, K, D): each clip's R real and K
    fake feature rows (e.g. R = 1 ground truth, K samples).

    The C clips are split into `folds` contiguous, disjoint, near-equal parts (the first C % folds parts one clip
    larger); fold i compares the real rows of its clips with their fake rows, so a clip's samples stay in its fold.
    Every fold needs >= 2 clips."""
    real, fake = torch.as_tensor(real), torch.as_tensor(fake)
    if real.dim() != 3 or fake.dim() != 3 or real.shape[0] != fake.shape[0]:
        raise ValueError(f"real and fake must be (C, rows, D) for the same C clips, got {tuple(real.shape)} and "
                         f"{tuple(fake.shape)}")
    if folds < 1 or real.shape[0] < 2 * folds:
        raise ValueError(f"{folds} folds need >= {2 * folds} clips, got {real.shape[0]}")
    parts = torch.tensor_split(torch.arange(real.shape[0]), folds)
    return summarize_folds([frechet_distance(real[part].flatten(0, 1), fake[part].flatten(0, 1)) for part in parts])


def fvd_protocol_card(*, protocol: str, i3d_path: str | Path | None, num_real: int, num_fake: int,
                      num_frames: int, folds: int, seeds: Sequence[int],
                      source_resolution: int | None = None) -> dict:
    """Everything a reader needs to compare an FVD number, as a JSON-ready dict.

    i3d_path None means stand-in weights (`random_i3d`): `stand_in_weights` is True and `weights_label` says the
    values are meaningless. source_resolution: frame size of the videos before the I3D resize (e.g. 64 or 256).
    """
    if protocol not in FVD_PROTOCOLS:
        raise ValueError(f"unknown FVD protocol {protocol!r}: choose one of {', '.join(FVD_PROTOCOLS)}")
    stand_in = i3d_path is None
    if stand_in:
        i3d_format, label = None, "STAND-IN: randomly initialised I3D (random_i3d); FVD values are meaningless"
    else:
        torchscript = is_torchscript_file(i3d_path)
        i3d_format = ("TorchScript, called with rescale=False, resize=False, return_features=True on this "
                      "protocol's input" if torchscript else "state dict (i3d_pretrained_400.pt layout)")
        label = f"Kinetics-400 I3D from {Path(i3d_path).name}"
    return {
        "metric": "FVD", "feature": FEATURE, "input_range": INPUT_RANGE, "protocol": protocol,
        "downscale": DOWNSCALE, "resizing": FVD_PROTOCOLS[protocol], "source_resolution": source_resolution,
        "frames": num_frames,
        "real_count": num_real, "fake_count": num_fake, "folds": folds, "seeds": list(seeds),
        "statistics": "float64 mean and unbiased covariance; tr sqrt via eigendecomposition + SVD",
        "i3d_file": None if stand_in else str(i3d_path), "i3d_format": i3d_format,
        "i3d_sha256": None if stand_in else file_sha256(i3d_path),
        "stand_in_weights": stand_in, "weights_label": label,
    }
