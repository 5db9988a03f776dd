"""Every clip record → the numbers of report.json: frame quality against baselines, compression against x264,
per-level diagnostics, FVD and FVD*, and timings. Pure functions of the records (and the eval's settings), in clip
order, so a resumed or multi-device eval gives the same report; only the `run` section (command line, devices,
timings) depends on the run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from vqvideo.evaluation.diagnostics import diagnostics_section
from vqvideo.evaluation.records import LEVELS
from vqvideo.metrics.frame_quality import PSNR_CAP
from vqvideo.metrics.fvd import frechet_distance_folds
from vqvideo.metrics.i3d import WEIGHTS_HELP
from vqvideo.metrics.levels import code_usage_from_counts

FRAME_SYSTEMS = {
    "sample_mean": "samples, mean over the K samples of each clip",
    "sample_best": "best of K: per clip, the sample with the best clip-average of this metric",
    "copy_last": "copy-last-given-frame baseline",
    "reconstruction": "VQ-VAE reconstruction of the ground truth (the ceiling the priors can reach)",
}


@dataclass(frozen=True)
class FVDSetup:
    """How FVD is computed in this eval: resolutions the I3D sees (each downscaled first), windows (first frames of
    the clip-length windows scored), folds, and the protocol card (`fvd_protocol_card` without counts)."""

    resolutions: tuple[int, ...]
    windows: tuple[int, ...]
    folds: int
    card: dict
    skipped_resolutions: dict[str, str] = field(default_factory=dict)

    @property
    def protocol(self) -> str:
        """How frames are resized for the I3D (a key of `vqvideo.metrics.fvd.FVD_PROTOCOLS`)."""
        return self.card["protocol"]


@dataclass(frozen=True)
class EvalSettings:
    """What the numbers mean: frames, samples, codebooks and bit budget, FVD (None: no I3D given)."""

    num_given_frames: int
    clip_frames: int
    num_frames: int
    num_samples: int
    resolution: int
    window_starts: tuple[int, ...]
    num_codes: dict[str, int]
    budget_bits: float
    fvd: FVDSetup | None
    fvd_missing_reason: str = ""


def _finite(values: np.ndarray) -> np.ndarray:
    return np.minimum(values, PSNR_CAP)


def _score(per_clip_frame: np.ndarray) -> dict:
    """(C, F) → {"mean", "per_frame" (F,), "per_clip" (C,)} as floats."""
    return {"mean": float(per_clip_frame.mean()), "per_frame": per_clip_frame.mean(axis=0).tolist(),
            "per_clip": per_clip_frame.mean(axis=1).tolist()}


def frame_quality_section(records: list[dict], settings: EvalSettings) -> dict:
    """Per-frame and mean PSNR/SSIM of the predicted frames: samples (mean and best of K) and the baselines."""
    section = {"frames": list(range(settings.num_given_frames, settings.num_frames)),
               "window_first_new_frames": [start + settings.num_given_frames for start in settings.window_starts],
               "systems": {name: {"description": text} for name, text in FRAME_SYSTEMS.items()}}
    capped = 0
    for metric in ("psnr", "ssim"):
        samples = np.stack([record[f"{metric}.sample"] for record in records])  # (C, K, F)
        if metric == "psnr":
            capped += int(np.isinf(samples).sum())
            samples = _finite(samples)
        best = samples.mean(axis=2).argmax(axis=1)  # (C,)
        per_system = {"sample_mean": samples.mean(axis=1), "sample_best": samples[np.arange(len(records)), best]}
        for name in ("copy_last", "reconstruction"):
            values = np.stack([record[f"{metric}.{name}"] for record in records])  # (C, F)
            if metric == "psnr":
                capped += int(np.isinf(values).sum())
                values = _finite(values)
            per_system[name] = values
        for name, values in per_system.items():
            section["systems"][name][metric] = _score(values)
    section["psnr_capped_frames"] = capped
    return section


def compression_section(records: list[dict], settings: EvalSettings) -> dict:
    """VQ-VAE reconstruction PSNR of the first clip windows beside x264 at the same number of bits."""
    pixel_bits = settings.clip_frames * settings.resolution ** 2 * 3 * 8
    mean = lambda key: float(np.mean([float(record[key]) for record in records]))  # noqa: E731
    return {
        "budget_bits": settings.budget_bits, "pixel_bits": pixel_bits,
        "budget_percent_of_pixels": 100.0 * settings.budget_bits / pixel_bits,
        "vqvae_psnr": mean("compression.vqvae_psnr"), "x264_psnr": mean("compression.x264_psnr"),
        "x264_bits": mean("compression.x264_bits"), "x264_header_bits": mean("compression.x264_header_bits"),
        "x264_qp": mean("compression.x264_qp"),
        "x264_over_budget_clips": int(sum(not bool(record["compression.x264_fits"]) for record in records)),
    }


def _usage(counts: np.ndarray) -> dict:
    usage = code_usage_from_counts(counts)
    return {"num_codes": usage.num_codes, "used": usage.used, "fraction_used": usage.fraction_used,
            "perplexity": usage.perplexity, "entropy_bits": usage.entropy_bits,
            "histogram": usage.counts.tolist()}


def levels_section(records: list[dict], settings: EvalSettings) -> dict:
    """Per level: code usage of the clips and of the samples, and the prior's bits per code beside its unigram
    baseline; the top-only reconstruction beside the mean-colour baseline."""
    section = {}
    for level in LEVELS:
        total = lambda key: np.sum([record[key] for record in records], axis=0)  # noqa: E731
        bits, count = float(total(f"bits.{level}")), float(total(f"bits.{level}_count"))
        unigram = code_usage_from_counts(total(f"levels.{level}_target_counts")).entropy_bits
        section[level] = {
            "codes": _usage(total(f"levels.{level}_counts")),
            "sampled_codes": _usage(total(f"levels.sample_{level}_counts")),
            "prior_bits_per_code": bits / count, "unigram_bits_per_code": unigram,
            "uniform_bits_per_code": math.log2(settings.num_codes[level]), "scored_codes": int(count),
        }
    top_only = float(np.mean([float(record["levels.top_only_psnr"]) for record in records]))
    mean_colour = float(np.mean([float(record["levels.mean_colour_psnr"]) for record in records]))
    section["top_only_psnr"], section["mean_colour_psnr"] = top_only, mean_colour
    section["top_level_carries_content"] = top_only > mean_colour
    return section


def _folded(real: np.ndarray, fake: np.ndarray, folds: int) -> dict:
    """real (C, 1, D), fake (C, K, D) per clip → Fréchet distance per fold of clips, mean ± sample std."""
    score = frechet_distance_folds(real, fake, folds)
    return {"mean": score.mean, "std": score.std, "per_fold": list(score.per_fold), "text": str(score)}


def fvd_section(records: list[dict], settings: EvalSettings) -> dict:
    """FVD (real: ground truth) and FVD* (real: reconstructions) of the samples, per resolution and window."""
    if settings.fvd is None:
        return {"status": "missing", "reason": settings.fvd_missing_reason, "how_to": WEIGHTS_HELP}
    setup = settings.fvd
    card = setup.card | {"real_count": len(records), "fake_count": len(records) * settings.num_samples}
    section = {"status": "computed", "card": card, "stand_in_weights": card["stand_in_weights"],
               "weights_label": card["weights_label"], "skipped_resolutions": setup.skipped_resolutions,
               "results": []}
    if len(records) < 2 * setup.folds:
        section |= {"status": "not computed", "reason": f"{setup.folds} folds need at least {2 * setup.folds} scored "
                    f"clips (each fold >= 2 real videos), this eval has {len(records)}: add clips or lower --folds"}
        return section
    for resolution in setup.resolutions:
        for start in setup.windows:
            stack = lambda system: np.stack(  # noqa: E731
                [record[f"features.{resolution}.{system}.{start}"] for record in records])
            fake = stack("sample")
            section["results"].append({
                "resolution": resolution, "window_start": start, "frames": [start, start + settings.clip_frames],
                "fvd": _folded(stack("truth"), fake, setup.folds),
                "fvd_star": _folded(stack("reconstruction"), fake, setup.folds)})
    return section


def timings_section(records: list[dict], settings: EvalSettings, wall_seconds: float | None) -> dict:
    """Throughput from the seconds each record carries (summed over batches and devices: per-device rates)."""
    sampling = float(sum(float(record["seconds.sampling"]) for record in records))
    features = float(sum(float(record["seconds.features"]) for record in records))
    videos = len(records) * settings.num_samples
    feature_videos = 0
    if settings.fvd is not None:
        per_clip = (2 + settings.num_samples) * len(settings.fvd.windows) * len(settings.fvd.resolutions)
        feature_videos = len(records) * per_clip
    return {
        "note": "seconds summed over batches and devices (so rates are per device), each from the run that "
                "produced the clip",
        "sampling_seconds": sampling, "sampled_videos": videos,
        "sampling_videos_per_second": videos / sampling if sampling > 0 else None,
        "feature_seconds": features, "feature_videos": feature_videos,
        "feature_videos_per_second": feature_videos / features if feature_videos and features > 0 else None,
        "wall_seconds_last_invocation": wall_seconds,
    }


def summarize(records: list[dict], settings: EvalSettings) -> dict:
    """The result sections of report.json from the records of the clips that were read (in clip order)."""
    if not records:
        raise ValueError("no clip could be read: nothing to report (see the failed clips)")
    return {"frame_quality": frame_quality_section(records, settings),
            "compression": compression_section(records, settings),
            "levels": levels_section(records, settings), "diagnostics": diagnostics_section(records),
            "fvd": fvd_section(records, settings)}
