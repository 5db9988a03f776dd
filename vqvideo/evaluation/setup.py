"""`vqvideo eval`: score the three trained stages on held-out clips and write one report to look at.

    vqvideo eval --vqvae CKPT --top CKPT --bottom CKPT [--data.root DIR] [--split val] [--num_clips N]
                 [--num_samples K] [--num_frames N] [--i3d PATH|random] [--fvd_protocol resize] [--folds 2]
                 [--seed 0] [--batch_size B] [--out DIR] [--trainer.devices N] [--overwrite]

For each clip (deterministic windows, center crop, the VQ-VAE's resolution and clip length): K futures sampled from
its first frames (rollouts for N > the clip length), the VQ-VAE's reconstruction and the copy-last-frame baseline,
written as MP4s and codes; frame quality against ground truth, compression against x264, per-level diagnostics,
FVD/FVD* with an I3D. Lightning's prediction loop runs it (`--trainer.devices N`: one part of the clips per device);
each clip's record is written as soon as it is done, so an eval killed at any point resumes with the same command
and gives the same report.json (all but its `run` section: command line, devices and timings).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from jsonargparse import ActionConfigFile, ActionYesNo, ArgumentParser

from vqvideo.data.datamodule import SPLITS
from vqvideo.lit.trainer_options import TrainerOptions, run_prediction
from vqvideo.metrics.fvd import FVD_PROTOCOLS
from vqvideo.sampling import DEFAULT_SAMPLER, SAMPLER_NAMES

RANDOM_I3D = "random"
FVD_DOWNSCALED = 64  # the paper's FVD comparison resolution (Table 2)


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


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="vqvideo eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", action=ActionConfigFile, help="YAML with any of these options")
    parser.add_argument("--vqvae", type=str, required=True, help="VQ-VAE checkpoint")
    parser.add_argument("--top", type=str, required=True, help="top prior checkpoint")
    parser.add_argument("--bottom", type=str, required=True, help="bottom prior checkpoint")
    parser.add_argument("--out", type=str, default="outputs/eval", help="output folder")
    parser.add_class_arguments(EvalData, "data")
    parser.add_argument("--split", type=Literal[SPLITS], default="val", help="split whose clips are scored")
    parser.add_argument("--num_clips", type=int | None, default=None, help="clips, spread evenly (None = all)")
    parser.add_argument("--num_samples", type=int, default=4, help="futures sampled per clip (K)")
    parser.add_argument("--num_frames", type=int | None, default=None,
                        help="frames per prediction (default: the VQ-VAE's clip length); more: a rollout")
    parser.add_argument("--i3d", type=str | None, default=None,
                        help="I3D weights for FVD (i3d_pretrained_400.pt or a TorchScript I3D); 'random': stand-in "
                             "weights for plumbing checks (FVD labelled meaningless); none: FVD left out")
    parser.add_argument("--fvd_protocol", type=Literal[tuple(FVD_PROTOCOLS)], default="resize")
    parser.add_argument("--folds", type=int, default=2, help="FVD: mean ± std over this many disjoint folds")
    parser.add_argument("--seed", type=int, default=0, help="same seed and options → same samples")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top_k", type=int | None, default=None)
    parser.add_argument("--top_p", type=float | None, default=None)
    parser.add_argument("--sampler", type=Literal[SAMPLER_NAMES], default=DEFAULT_SAMPLER)
    parser.add_argument("--batch_size", type=int, default=4, help="clips per batch (K samples each)")
    parser.add_argument("--num_threads", type=int, default=1,
                        help="CPU threads for torch (sampling runs many tiny ops: 1 is fastest on CPU; results "
                             "depend on it, so it is part of the eval's identity)")
    parser.add_argument("--html_clips", type=int, default=24, help="clips shown in index.html")
    parser.add_class_arguments(TrainerOptions, "trainer")
    parser.add_argument("--overwrite", action=ActionYesNo, default=False, help="replace an existing eval in --out")
    return parser


def check_args(cfg) -> None:
    for name in ("num_samples", "batch_size", "folds", "html_clips"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.num_clips is not None and cfg.num_clips < 1:
        raise ValueError(f"--num_clips must be >= 1 (or omitted for all), got {cfg.num_clips}")


@dataclass
class Setup:
    """Everything built before the prediction loop (identical in every DDP process)."""

    spec: object  # vqvideo.data.inputs.InputSpec
    num_frames: int
    window_starts: list[int]
    models: object  # PredictionModels
    datamodule: object  # KineticsDataModule after setup
    clips: list
    i3d: object | None


def load_i3d_option(option: str | None):
    """(I3D module or None, its path for the protocol card: None for stand-in weights)."""
    from vqvideo.metrics.i3d import load_i3d, random_i3d

    if option is None:
        return None, None
    if option == RANDOM_I3D:
        return random_i3d(seed=0), None
    return load_i3d(option), option


def prepare(cfg) -> Setup:
    """Checkpoints, clips and I3D; every user error raises here with one message, before any sampling."""
    from vqvideo.data.datamodule import KineticsDataModule
    from vqvideo.evaluation.clips import plan_eval_clips
    from vqvideo.lit.prediction import input_spec, load_prediction_models
    from vqvideo.sampling.pipeline import window_starts

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
                         f"clip at stride {spec.frame_stride}: choose another --split or --data.root, or fewer "
                         "--num_frames")
    cfg.batch_size = min(cfg.batch_size, len(clips))  # never sample padding rows a bigger batch would need
    return Setup(spec, num_frames, starts, models, datamodule, clips, i3d)


def fvd_windows(num_frames: int, clip_frames: int, starts: list[int]) -> tuple[int, ...]:
    """First frames of the clip-length windows FVD scores: each rollout window, the last one moved back to end at
    the last frame."""
    return tuple(dict.fromkeys(min(start, num_frames - clip_frames) for start in starts))


def fvd_setup(cfg, setup: Setup):
    """(FVDSetup or None, why FVD is missing)."""
    from vqvideo.evaluation.summary import FVDSetup
    from vqvideo.metrics.fvd import fvd_protocol_card
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


def clips_sha256(clips: list) -> str:
    from vqvideo.files import bytes_sha256

    rows = [[clip.name, clip.rel_path, clip.start_frame, clip.num_frames, clip.frame_stride] for clip in clips]
    return bytes_sha256(json.dumps(rows).encode())


def eval_identity(cfg, setup: Setup) -> dict:
    """What the results depend on (run.json; report.json's `settings`). Not devices: they only change the speed."""
    from vqvideo.files import file_sha256

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
    }


def protocol(cfg, setup: Setup) -> dict:
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


def header(cfg, setup: Setup) -> dict:
    from vqvideo.files import file_sha256

    checkpoints = {name: {"path": str(getattr(cfg, name)), "sha256": file_sha256(getattr(cfg, name))}
                   for name in ("vqvae", "top", "bottom")}
    if cfg.i3d is not None:
        checkpoints["i3d"] = ({"path": "random_i3d(seed=0)", "sha256": None} if cfg.i3d == RANDOM_I3D else
                              {"path": cfg.i3d, "sha256": file_sha256(cfg.i3d)})
    return {"settings": eval_identity(cfg, setup), "protocol": protocol(cfg, setup), "checkpoints": checkpoints}


def report_context(cfg, setup: Setup, argv: list[str]):
    from vqvideo.evaluation.report import ReportContext
    from vqvideo.evaluation.summary import EvalSettings
    from vqvideo.metrics.codec import code_budget_bits

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


def scoring_spec(cfg, context):
    from vqvideo.evaluation.records import ScoringSpec
    from vqvideo.lit.prediction import prior_code_spec

    code_spec = prior_code_spec(cfg.top)
    settings = context.settings
    return ScoringSpec(settings.num_given_frames, settings.clip_frames, settings.num_codes,
                       {"top": code_spec.given_top_shape[0], "bottom": code_spec.given_bottom_shape[0]},
                       settings.budget_bits)


def eval_module(cfg, setup: Setup, context):
    from vqvideo.evaluation.clips import clip_key
    from vqvideo.lit.eval_module import EvalModule
    from vqvideo.sampling import SamplingOptions

    fvd = context.settings.fvd
    return EvalModule(setup.models, [clip_key(clip.name) for clip in setup.clips], setup.spec.num_frames,
                      setup.spec.num_given_frames, setup.num_frames, cfg.num_samples,
                      SamplingOptions(cfg.temperature, cfg.top_k, cfg.top_p), cfg.seed, cfg.batch_size, cfg.sampler,
                      setup.i3d, cfg.fvd_protocol, fvd.resolutions if fvd else (), fvd.windows if fvd else (0,))


def run_eval(cfg, argv: list[str], started: float) -> dict | None:
    """Predict and score every clip not yet recorded in --out, then (rank 0) write the report."""
    from vqvideo.callbacks.eval_writer import EvalWriter
    from vqvideo.data.fixed_clips import FixedClipsDataModule
    from vqvideo.evaluation.report import write_report
    from vqvideo.evaluation.run import check_run, finished_names
    from vqvideo.files import explain_disk_full

    setup = prepare(cfg)
    context = report_context(cfg, setup, argv)
    out, identity = Path(cfg.out), context.header["settings"]
    finish = lambda: write_report(context, time.perf_counter() - started)  # noqa: E731
    ids = {clip.name: clip.clip_id for clip in setup.clips}
    if not cfg.overwrite:
        check_run(out, identity)  # every process, before the trainer: all refuse alike
        if ids.keys() <= finished_names(out):
            print(f"vqvideo eval: every clip of {out} is already scored; rebuilding the report")
            return summary_lines(finish())
    sizes = {entry.path: (entry.height, entry.width) for entry in setup.datamodule.index.entries}
    pending = FixedClipsDataModule(setup.clips, setup.spec.resolution, cfg.batch_size, cfg.data.num_workers,
                                   cfg.data.decode_device, sizes,
                                   done_ids=lambda: {ids[name] for name in finished_names(out) if name in ids})
    pending.allow_zero_length_dataloader_with_multiple_devices = True  # fewer pending clips than devices
    writer = EvalWriter(out, setup.clips, identity, scoring_spec(cfg, context), finish, cfg.overwrite)
    per_clip = (3 + cfg.num_samples) * setup.num_frames * setup.spec.resolution ** 2 * 3 // 10  # MP4s, generous
    with explain_disk_full(out, len(setup.clips) * per_clip, "the eval", "run the same command again: it keeps "
                           "the finished clips"):
        is_global_zero = run_prediction(cfg.trainer, str(out), writer, eval_module(cfg, setup, context), pending)
    if is_global_zero:
        return summary_lines(json.loads((out / "report.json").read_text()))
    return None


def summary_lines(report: dict) -> dict:
    """Print the headline numbers and where to look; returns the report."""
    quality = report["frame_quality"]["systems"]
    clips = report["clips"]["scored"]
    print(f"vqvideo eval: {clips} clip{'s' * (clips != 1)}, {report['protocol']['samples_per_clip']} samples each")
    for name in ("sample_mean", "sample_best", "copy_last", "reconstruction"):
        print(f"  {name:<15} PSNR {quality[name]['psnr']['mean']:6.2f} dB   SSIM {quality[name]['ssim']['mean']:.4f}")
    fvd = report["fvd"]
    if fvd["status"] == "computed":
        for result in fvd["results"]:
            label = "  (stand-in weights: meaningless)" if fvd["stand_in_weights"] else ""
            print(f"  FVD {result['resolution']} px frames {result['frames']}: {result['fvd']['text']}, "
                  f"FVD* {result['fvd_star']['text']}{label}")
    else:
        print(f"  FVD {fvd['status']}: {fvd['reason'].split('. ')[0]}")
    return report


def main(argv: list[str] | None = None) -> int:
    from vqvideo.data.datamodule import NoReadableVideoError
    from vqvideo.data.sources import SourceError
    from vqvideo.evaluation.run import EvalFolderError
    from vqvideo.files import DiskFullError
    from vqvideo.lit.checkpoints import CheckpointError
    from vqvideo.metrics.i3d import I3DWeightsError

    started = time.perf_counter()
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = build_parser().parse_args(argv)
    try:
        check_args(cfg)
        import torch

        if cfg.num_threads > 0:
            torch.set_num_threads(cfg.num_threads)
        report = run_eval(cfg, argv, started)
    except (CheckpointError, I3DWeightsError, SourceError, NoReadableVideoError, EvalFolderError, DiskFullError,
            FileNotFoundError, ValueError) as error:
        print(f"vqvideo eval: {error}", file=sys.stderr)
        return 2
    if report is not None:
        print(f"vqvideo eval: report {Path(cfg.out) / 'report.md'}; look at {Path(cfg.out) / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
