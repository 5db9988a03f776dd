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

The whole story sits in vqvideo/evaluation/ (plus the metrics it calls in vqvideo/metrics/):
- command.py (this file): the options, the run and the printed summary; setup.py: what is built before the loop;
- module.py: the prediction-loop LightningModule (samples, reconstructions, bits, I3D features per batch);
- writer.py: its prediction writer (each clip's record as soon as its batch is done, the report at the end);
- clips.py, run.py, records.py: the evaluated clips, the eval folder's identity, each clip's scores and record;
- summary.py, report.py, tables.py, markdown.py, html.py, plots.py: report.json from the records, and what is
  rendered from it.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Literal

import torch
from jsonargparse import ActionConfigFile, ActionYesNo, ArgumentParser, Namespace

from vqvideo.data.datamodule import SPLITS, NoReadableVideoError
from vqvideo.data.fixed_clips import FixedClipsDataModule
from vqvideo.data.sources import SourceError
from vqvideo.evaluation.report import write_report
from vqvideo.evaluation.run import EvalFolderError, check_run, finished_names
from vqvideo.evaluation.setup import EvalData, eval_module, prepare, report_context, scoring_spec
from vqvideo.evaluation.writer import EvalWriter
from vqvideo.files import DiskFullError, explain_disk_full
from vqvideo.lit.checkpoints import CheckpointError
from vqvideo.lit.trainer_options import TrainerOptions, run_prediction
from vqvideo.metrics.fvd import FVD_PROTOCOLS
from vqvideo.metrics.i3d import I3DWeightsError
from vqvideo.sampling import DEFAULT_SAMPLER, SAMPLER_NAMES


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


def check_args(cfg: Namespace) -> None:
    for name in ("num_samples", "batch_size", "folds", "html_clips"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.num_clips is not None and cfg.num_clips < 1:
        raise ValueError(f"--num_clips must be >= 1 (or omitted for all), got {cfg.num_clips}")


def run_eval(cfg: Namespace, argv: list[str], started: float) -> dict | None:
    """Predict and score every clip not yet recorded in --out, then (rank 0) write the report."""
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
    started = time.perf_counter()
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = build_parser().parse_args(argv)
    try:
        check_args(cfg)
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
