"""One evaluated clip: its scores against the ground truth, its videos and codes, and its record file.

Everything that needs the clip's pixels is computed here, per clip, as soon as its batch is predicted (the pixels
are not kept: at paper scale they would not fit on disk); the report is later built from the records alone.
Scores are computed one clip at a time, so a clip's numbers never depend on which clips shared its batch (a resumed
or multi-device run gives the same records). The record is written last: its presence means the clip is done.

Record arrays (`results/<clip>.npz`), F = predicted frames (N - given), K = samples:
  psnr.sample, ssim.sample (K, F); psnr.copy_last, ssim.copy_last, psnr.reconstruction, ssim.reconstruction (F,)
  psnr.copied_codes (Tc - given,)   the given codes' last slices repeated, decoded (the first window)
  spread.error_vs_truth, spread.error_vs_reconstruction, spread.variance (N,)   the samples' mean squared error
      against each target and their variance about their own average (`vqvideo.metrics.sample_spread`)
  compression.vqvae_psnr, compression.x264_psnr / _bits / _header_bits / _qp / _fits ()   (the first clip window)
  levels.top_only_psnr, levels.mean_colour_psnr ();  levels.<level>_counts, levels.sample_<level>_counts,
  levels.<level>_target_counts (codebook size,) for level in top, bottom
  bits.top, bits.top_count, bits.bottom, bits.bottom_count ()   teacher-forced bits of the priors, summed
  features.<px>.<system>.<window> (rows, 400)   I3D features (system truth | reconstruction | sample)
  seconds.sampling, seconds.features ()   this clip's share of its batch's time (timings, not results)
  clip: the clip as JSON; read_error: why the clip could not be read ("" if it was)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from vqvideo.evaluation.clips import EvalClip
from vqvideo.evaluation.run import CODES_DIR, GIFS_DIR, RESULTS_DIR, VIDEOS_DIR
from vqvideo.files import atomic_write_npz
from vqvideo.metrics.codec import x264_at_budget
from vqvideo.metrics.code_stability import code_changes, slice_agreement, still_positions
from vqvideo.metrics.frame_quality import copy_last_frame_video, frame_quality, per_frame_psnr
from vqvideo.metrics.levels import mean_colour_psnr
from vqvideo.metrics.sample_spread import sample_spread
from vqvideo.panels import prediction_panel
from vqvideo.video_io import write_gif, write_mp4

RECORDS_VERSION = 3  # 2: psnr.copied_codes, 3: spread.*; run.json records it: older records are refused, not resumed
LEVELS = ("top", "bottom")
BASELINE_SYSTEMS = ("truth", "reconstruction", "copy_last")


def sample_system(index: int) -> str:
    return f"sample_{index}"


def system_names(num_samples: int) -> list[str]:
    """Every system with a video per clip: truth, reconstruction, copy_last, sample_0 .. sample_<K-1>."""
    return [*BASELINE_SYSTEMS, *(sample_system(index) for index in range(num_samples))]


class ClipOutput(NamedTuple):
    """What the eval module predicts for one clip (NumPy, CPU). N: the eval's frames, Tc: the VQ-VAE's clip length.

    truth, reconstruction: (N, H, W, 3) uint8 (the reconstruction window by window); top_only, copied_codes:
    (Tc, H, W, 3) uint8 of the first window (its top level alone; the given codes' last slices repeated); samples:
    (K, N, H, W, 3) uint8; codes: top/bottom/given_top/given_bottom int64 of the first window (given_*: the given
    frames encoded alone); sample_codes: the same keys, (K, windows, ...);
    bits: top, top_count, bottom, bottom_count floats; features: name → (rows, 400) float32; seconds: name → s;
    slice_bits: <level>, <level>_swapped → (future slices,) float64 bits/code (`diagnostics.slice_bits`)."""

    truth: np.ndarray
    reconstruction: np.ndarray
    top_only: np.ndarray
    copied_codes: np.ndarray
    samples: np.ndarray
    codes: dict[str, np.ndarray]
    sample_codes: dict[str, np.ndarray]
    bits: dict[str, float]
    features: dict[str, np.ndarray]
    seconds: dict[str, float]
    slice_bits: dict[str, np.ndarray]


class ScoringSpec(NamedTuple):
    """What scoring needs besides the clip: given frames, the VQ-VAE's clip length, codebook sizes, and the bits of
    the two code grids (the x264 budget)."""

    num_given_frames: int
    clip_frames: int
    num_codes: dict[str, int]
    num_given_slices: dict[str, int]
    budget_bits: float


def frame_scores(output: ClipOutput, num_given: int) -> dict[str, np.ndarray]:
    """PSNR/SSIM of the predicted frames of every sample, copy-last-frame and the reconstruction."""
    truth = torch.from_numpy(np.ascontiguousarray(output.truth[num_given:]))  # (F, H, W, 3)
    num_samples = output.samples.shape[0]
    samples = frame_quality(output.samples[:, num_given:], truth.expand(num_samples, *truth.shape))
    copy_last = copy_last_frame_video(output.truth[None], num_given)[:, num_given:]
    baselines = {"copy_last": frame_quality(copy_last, truth[None]),
                 "reconstruction": frame_quality(output.reconstruction[None, num_given:], truth[None])}
    scores = {"psnr.sample": samples.psnr.numpy(), "ssim.sample": samples.ssim.numpy()}
    for name, quality in baselines.items():
        scores[f"psnr.{name}"], scores[f"ssim.{name}"] = quality.psnr[0].numpy(), quality.ssim[0].numpy()
    return scores


def window_scores(output: ClipOutput, spec: ScoringSpec) -> dict[str, np.ndarray]:
    """Compression (VQ-VAE vs x264 at the code budget) and the top-only vs mean-colour diagnostic, on the first
    clip window (the VQ-VAE's clip length, all its frames)."""
    truth = output.truth[:spec.clip_frames]
    reconstruction = per_frame_psnr(output.reconstruction[None, :spec.clip_frames], truth[None]).mean()
    top_only = per_frame_psnr(output.top_only[None], truth[None]).mean()
    x264 = x264_at_budget(truth, spec.budget_bits)
    return {"compression.vqvae_psnr": np.float64(reconstruction),
            "compression.x264_psnr": np.float64(x264.psnr), "compression.x264_bits": np.int64(x264.bits),
            "compression.x264_header_bits": np.int64(x264.header_bits), "compression.x264_qp": np.int64(x264.qp),
            "compression.x264_fits": np.bool_(x264.fits),
            "levels.top_only_psnr": np.float64(top_only),
            "levels.mean_colour_psnr": np.float64(mean_colour_psnr(truth[None])[0])}


def code_counts(output: ClipOutput, spec: ScoringSpec) -> dict[str, np.ndarray]:
    """Histograms per level: the clip's codes, its future (predicted) codes, and the samples' future codes."""
    counts = {}
    for level in LEVELS:
        size, given = spec.num_codes[level], spec.num_given_slices[level]
        histogram = lambda codes: np.bincount(np.asarray(codes).ravel(), minlength=size).astype(np.int64)  # noqa: E731
        counts[f"levels.{level}_counts"] = histogram(output.codes[level])
        counts[f"levels.{level}_target_counts"] = histogram(output.codes[level][given:])
        counts[f"levels.sample_{level}_counts"] = histogram(output.sample_codes[level][:, :, given:])
    return counts


def diagnostic_scores(output: ClipOutput, spec: ScoringSpec) -> dict[str, np.ndarray]:
    """One clip's record entries: stability.<level>_<CodeChanges field> (T'-1,) int64 of the clip's codes and
    stability.sample_<level>_changed (K, T'-1) of the samples' first window; stability.<level>_given_agreement
    (given slices,) float64; bits.<level>_per_slice(_swapped) (future slices,) float64; psnr.sample_vs_reconstruction
    (K, N) float64 (every frame, the given ones included); psnr.copied_codes (Tc - given,) float64 against the
    ground truth, the first window's predicted frames; spread.error_vs_<truth|reconstruction>, spread.variance (N,)
    float64 mean squared 8-bit errors (`sample_spread`)."""
    truth = torch.from_numpy(np.ascontiguousarray(output.truth[None, :spec.clip_frames]))  # (1, Tc, H, W, 3)
    scores = {}
    for level in LEVELS:
        codes = torch.as_tensor(output.codes[level])[None]  # (1, T', H', W')
        changes = code_changes(codes, still_positions(truth, tuple(codes.shape[1:])))
        scores |= {f"stability.{level}_{name}": value.numpy() for name, value in changes._asdict().items()}
        samples = torch.as_tensor(output.sample_codes[level])[:, 0]  # (K, T', H', W') of the first window
        scores[f"stability.sample_{level}_changed"] = np.stack(
            [code_changes(sample[None]).changed.numpy() for sample in samples])
        given = torch.as_tensor(output.codes[f"given_{level}"])[None]
        scores[f"stability.{level}_given_agreement"] = slice_agreement(given, codes).numpy()
        for suffix in ("", "_swapped"):
            scores[f"bits.{level}_per_slice{suffix}"] = np.asarray(output.slice_bits[f"{level}{suffix}"], np.float64)
    reconstruction = np.repeat(output.reconstruction[None], output.samples.shape[0], axis=0)  # (K, N, H, W, 3)
    scores["psnr.sample_vs_reconstruction"] = per_frame_psnr(output.samples, reconstruction).numpy()
    given = spec.num_given_frames
    copied = torch.from_numpy(np.ascontiguousarray(output.copied_codes[None, given:]))
    scores["psnr.copied_codes"] = per_frame_psnr(copied, truth[:, given:])[0].numpy()
    spreads = {name: sample_spread(output.samples, target)
               for name, target in (("truth", output.truth), ("reconstruction", output.reconstruction))}
    scores |= {f"spread.error_vs_{name}": spread.error for name, spread in spreads.items()}
    scores["spread.variance"] = spreads["truth"].spread  # the samples' own: the same against either target
    return scores


def score_clip(output: ClipOutput, spec: ScoringSpec) -> dict[str, np.ndarray]:
    """Every per-clip number of the record (see the module docstring)."""
    scores = frame_scores(output, spec.num_given_frames) | window_scores(output, spec) | code_counts(output, spec)
    scores |= diagnostic_scores(output, spec)
    scores |= {f"bits.{name}": np.float64(value) for name, value in output.bits.items()}
    scores |= {f"features.{name}": np.asarray(value, dtype=np.float32) for name, value in output.features.items()}
    scores |= {f"seconds.{name}": np.float64(value) for name, value in output.seconds.items()}
    return scores


def system_videos(output: ClipOutput, num_given: int) -> dict[str, np.ndarray]:
    """system → (N, H, W, 3) uint8: the videos people look at and pair."""
    videos = {"truth": output.truth, "reconstruction": output.reconstruction,
              "copy_last": copy_last_frame_video(output.truth[None], num_given)[0].numpy()}
    return videos | {sample_system(index): sample for index, sample in enumerate(output.samples)}


def video_path(out: Path, system: str, name: str) -> Path:
    return out / VIDEOS_DIR / system / f"{name}.mp4"


def write_clip(out: Path, clip: EvalClip, output: ClipOutput, spec: ScoringSpec) -> dict[str, np.ndarray]:
    """Score the clip, write its videos and codes, then its record (last); returns the record's arrays."""
    scores = score_clip(output, spec)
    for system, frames in system_videos(output, spec.num_given_frames).items():
        write_mp4(video_path(out, system, clip.name), frames, clip.fps)
    panel = prediction_panel(output.truth, np.asarray(output.samples), spec.num_given_frames, scale=2)
    write_gif(out / GIFS_DIR / f"{clip.name}.gif", panel, clip.fps)
    codes = {key: value.astype(np.uint16) for key, value in output.codes.items()}  # codes < 65536 on disk
    codes |= {f"sample_{key}": value.astype(np.uint16) for key, value in output.sample_codes.items()}
    atomic_write_npz(out / CODES_DIR / f"{clip.name}.npz", codes | {"clip": np.array(json.dumps(clip.as_dict()))})
    record = scores | {"clip": np.array(json.dumps(clip.as_dict())), "read_error": np.array("")}
    atomic_write_npz(out / RESULTS_DIR / f"{clip.name}.npz", record)
    return record


def write_failure(out: Path, clip: EvalClip, reason: str) -> None:
    """The record of a clip whose video could not be read (reported, left out of every score)."""
    atomic_write_npz(out / RESULTS_DIR / f"{clip.name}.npz",
                     {"clip": np.array(json.dumps(clip.as_dict())), "read_error": np.array(reason)})


def read_record(out: Path, name: str) -> dict[str, np.ndarray]:
    """The arrays of `results/<name>.npz` (loaded into memory)."""
    with np.load(out / RESULTS_DIR / f"{name}.npz") as record:
        return {key: record[key] for key in record.files}
