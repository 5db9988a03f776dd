"""What `vqvideo eval` builds before its prediction loop: checkpoints, clips and I3D (`prepare`), the FVD setup
(resolutions, windows, protocol card), the eval's identity and protocol card, the report's context and the
prediction-loop module. Every user error raises here with one message, before any sampling.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from jsonargparse import Namespace
from torch import nn

from vqvideo.data.datamodule import KineticsDataModule
from vqvideo.data.inputs import InputSpec
from vqvideo.evaluation.clips import EvalClip, clip_key, plan_eval_clips
from vqvideo.evaluation.module import EvalModule, EvalSampling
from vqvideo.evaluation.records import RECORDS_VERSION, ScoringSpec
from vqvideo.evaluation.report import ReportContext
from vqvideo.evaluation.summary import EvalSettings, FVDSetup
from vqvideo.files import bytes_sha256, file_sha256
from vqvideo.lit.prediction import input_spec, load_prediction_models, prior_code_spec
from vqvideo.metrics.codec import code_budget_bits
from vqvideo.metrics.fvd import FVD_DOWNSCALED, fvd_protocol_card
from vqvideo.metrics.i3d import load_i3d, random_i3d
from vqvideo.sampling import SamplingOptions
from vqvideo.sampling.pipeline import PredictionModels, window_starts

RANDOM_I3D = "random"


@dataclass
class EvalData:
    """Where the clips come from. Clip length, resolution, frame stride / fps and the bundled clips' held-out
    fraction are the VQ-VAE checkpoint's (how it was trained), never re-typed here."""

    root: str | None = None  # None = the bundled clips' held-out part
    source: str = "auto"  # auto | kinetics | folder | embedded
    max_clips_per_video: int | None = None  # None = every non-overlapping window
    num_workers: int = 0
    decode_device: str = "cpu"
    index_cache_dir: str | None = "data/index"


@dataclass
class Setup:
    """Everything built before the prediction loop (identical in every DDP process)."""
    spec: InputSpec
    num_frames: int
    window_starts: list[int]
    models: PredictionModels
    datamodule: KineticsDataModule  # after setup()
    clips: list[EvalClip]
    i3d: nn.Module | None


def load_i3d_option(option: str | None) -> tuple[nn.Module | None, str | None]:
    """(I3D module or None, its path for the protocol card: None for stand-in weights)."""
    if option is None:
        return None, None
    if option == RANDOM_I3D:
        return random_i3d(seed=0), None
    return load_i3d(option), option


def prepare(cfg: Namespace) -> Setup:
    """Checkpoints, clips and I3D; every user error raises here with one message, before any sampling."""
    spec = input_spec(cfg.vqvae, cfg.top)
    num_frames = cfg.num_frames or spec.num_frames
    starts = window_starts(num_frames, spec.num_frames, spec.num_given_frames)  # refuses too few frames
    models = load_prediction_models(cfg.vqvae, cfg.top, cfg.bottom, "cpu")
    i3d, _ = load_i3d_option(cfg.i3d)
    datamodule = KineticsDataModule(**vars(cfg.data), num_frames=num_frames, resolution=spec.resolution,
                                    frame_stride=spec.frame_stride, target_fps=spec.target_fps,
                                    val_fraction=spec.val_fraction, batch_size=cfg.batch_size)
    datamodule.setup()
    clips = plan_eval_clips(datamodule, cfg.split, cfg.num_clips)
    if not clips:
        raise ValueError(f"split {cfg.split!r} of {cfg.data.root or 'the bundled clips'} has no {num_frames}-frame "
                         f"clip at stride {spec.frame_stride}: --split all takes every readable file of the root (no "
                         "hash split); or choose another --split or --data.root, or fewer --num_frames")
    cfg.batch_size = min(cfg.batch_size, len(clips))  # never sample padding rows a bigger batch would need
    return Setup(spec, num_frames, starts, models, datamodule, clips, i3d)


def fvd_windows(num_frames: int, clip_frames: int, starts: list[int]) -> tuple[int, ...]:
    """First frames of the clip-length windows FVD scores: each rollout window, the last one moved back to end at
    the last frame."""
    return tuple(dict.fromkeys(min(start, num_frames - clip_frames) for start in starts))


def fvd_setup(cfg: Namespace, setup: Setup) -> tuple[FVDSetup | None, str]:
    """(FVDSetup or None, why FVD is missing)."""
    if setup.i3d is None:
        return None, "no I3D weights given (--i3d PATH)"
    native = setup.spec.resolution
    resolutions = tuple(dict.fromkeys([FVD_DOWNSCALED] * (native >= FVD_DOWNSCALED) + [native]))
    skipped = {} if native >= FVD_DOWNSCALED else {
        str(FVD_DOWNSCALED): f"clips are {native} px: not upscaled to {FVD_DOWNSCALED}"}
    for paper_resolution in (256,):
        if paper_resolution not in resolutions:
            skipped[str(paper_resolution)] = f"this VQ-VAE's clips are {native} px"
    card = fvd_protocol_card(protocol=cfg.fvd_protocol, i3d_path=None if cfg.i3d == RANDOM_I3D else cfg.i3d,
                             num_real=0, num_fake=0, num_frames=setup.spec.num_frames, folds=cfg.folds,
                             seeds=[cfg.seed], source_resolution=native)
    windows = fvd_windows(setup.num_frames, setup.spec.num_frames, setup.window_starts)
    return FVDSetup(resolutions, windows, cfg.folds, card, skipped), ""


def clips_sha256(clips: list[EvalClip]) -> str:
    rows = [[clip.name, clip.rel_path, clip.start_frame, clip.num_frames, clip.frame_stride] for clip in clips]
    return bytes_sha256(json.dumps(rows).encode())


def eval_identity(cfg: Namespace, setup: Setup) -> dict:
    """What the results depend on (run.json; report.json's `settings`). Not devices: they only change the speed."""
    i3d = None if cfg.i3d is None else RANDOM_I3D if cfg.i3d == RANDOM_I3D else file_sha256(cfg.i3d)
    return {
        "checkpoints_sha256": {name: file_sha256(getattr(cfg, name)) for name in ("vqvae", "top", "bottom")},
        "i3d_sha256": i3d,
        "data": {"root": cfg.data.root, "source": cfg.data.source, "split": cfg.split, "num_clips": cfg.num_clips,
                 "max_clips_per_video": cfg.data.max_clips_per_video,
                 "index_fingerprint": setup.datamodule.index.fingerprint, "clips_sha256": clips_sha256(setup.clips)},
        "num_frames": setup.num_frames,
        "sampling": {"num_samples": cfg.num_samples, "seed": cfg.seed, "sampler": cfg.sampler,
                     "temperature": cfg.temperature, "top_k": cfg.top_k, "top_p": cfg.top_p},
        "fvd": {"protocol": cfg.fvd_protocol, "folds": cfg.folds},
        "compute": {"batch_size": cfg.batch_size, "num_threads": cfg.num_threads,
                    "accelerator": cfg.trainer.accelerator, "precision": cfg.trainer.precision},
        "records_version": RECORDS_VERSION,
    }


def protocol(cfg: Namespace, setup: Setup) -> dict:
    """The protocol card of everything but FVD (whose card is in the fvd section), as short JSON values."""
    spec, num_given = setup.spec, setup.spec.num_given_frames
    source = (f"the bundled clips' held-out part (the last {spec.val_fraction:.0%} of each video's frames, never "
              "trained on)" if cfg.data.root is None else f"{cfg.data.root} (split {cfg.split})")
    stride = f"fps {spec.target_fps}" if spec.target_fps else f"stride {spec.frame_stride}"
    windows = len(setup.window_starts)
    return {
        "clips": f"{len(setup.clips)} clips of {source}: non-overlapping windows of each video"
                 + (f" (at most {cfg.data.max_clips_per_video} per video)" if cfg.data.max_clips_per_video else "")
                 + (f", {cfg.num_clips} spread evenly" if cfg.num_clips else "") + f", {stride}, center crop",
        "resolution": spec.resolution, "clip_frames": spec.num_frames, "given_frames": num_given,
        "frames": setup.num_frames,
        "prediction": f"{setup.num_frames - num_given} predicted frames" + (
            f", a rollout of {windows} windows (starts {setup.window_starts}): each window is given the previous "
            f"window's last {num_given} decoded frames" if windows > 1 else ""),
        "samples_per_clip": cfg.num_samples,
        "sampling": f"{cfg.sampler} sampler, temperature {cfg.temperature}, top_k {cfg.top_k}, top_p {cfg.top_p}, "
                    f"seed {cfg.seed}; each (clip, sample) has its own generator: task_generator(seed, "
                    "sha256(clip name), sample)",
        "frame_quality": f"PSNR and SSIM of the {setup.num_frames - num_given} predicted frames against the ground "
                         "truth, uint8 RGB at the VQ-VAE's resolution",
        "compression_and_levels": f"on the first {spec.num_frames}-frame window of each clip",
    }


def header(cfg: Namespace, setup: Setup) -> dict:
    checkpoints = {name: {"path": str(getattr(cfg, name)), "sha256": file_sha256(getattr(cfg, name))}
                   for name in ("vqvae", "top", "bottom")}
    if cfg.i3d is not None:
        checkpoints["i3d"] = ({"path": "random_i3d(seed=0)", "sha256": None} if cfg.i3d == RANDOM_I3D else
                              {"path": cfg.i3d, "sha256": file_sha256(cfg.i3d)})
    return {"settings": eval_identity(cfg, setup), "protocol": protocol(cfg, setup), "checkpoints": checkpoints}


def report_context(cfg: Namespace, setup: Setup, argv: list[str]) -> ReportContext:
    vqvae, spec = setup.models.vqvae, setup.spec
    top_shape, bottom_shape = vqvae.latent_shapes(spec.num_frames, spec.resolution, spec.resolution)
    num_codes = {"top": vqvae.num_top_codes, "bottom": vqvae.num_bottom_codes}
    fvd, missing = fvd_setup(cfg, setup)
    settings = EvalSettings(spec.num_given_frames, spec.num_frames, setup.num_frames, cfg.num_samples,
                            spec.resolution, tuple(setup.window_starts), num_codes,
                            code_budget_bits([top_shape, bottom_shape], [num_codes["top"], num_codes["bottom"]]),
                            fvd, missing)
    run = {"command": ["vqvideo", "eval", *argv], "devices": cfg.trainer.devices}
    return ReportContext(Path(cfg.out), setup.clips, settings, header(cfg, setup), run, cfg.html_clips)


def scoring_spec(cfg: Namespace, context: ReportContext) -> ScoringSpec:
    code_spec = prior_code_spec(cfg.top)
    settings = context.settings
    return ScoringSpec(settings.num_given_frames, settings.clip_frames, settings.num_codes,
                       {"top": code_spec.given_top_shape[0], "bottom": code_spec.given_bottom_shape[0]},
                       settings.budget_bits)


def eval_module(cfg: Namespace, setup: Setup, context: ReportContext) -> EvalModule:
    sampling = EvalSampling(SamplingOptions(cfg.temperature, cfg.top_k, cfg.top_p), cfg.sampler, cfg.seed,
                            cfg.batch_size)
    return EvalModule(setup.models, context.settings, sampling, [clip_key(clip.name) for clip in setup.clips],
                      setup.i3d)
