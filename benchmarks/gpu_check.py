"""The prepared GPU check: everything that needs a GPU, checked and measured in one run (`make gpu-check`).

    python benchmarks/gpu_check.py [--device cuda] [--out outputs/gpu_check.md] [--parts steps,sampler,...]
    make gpu-check                 # on one CUDA GPU: under 8 minutes on an H100/H200-class GPU
    make gpu-check DEVICE=cpu      # the same script at tiny shapes, float32 (tests/test_gpu_check.py runs it)

Parts (each timed, each pass/fail with its error; one failing part never stops the others):
  steps     each paper config (experiments/kinetics600_256: vqvae, top_prior, bottom_prior): training steps at the
            YAML's per-GPU batch on synthetic inputs, bf16 autocast: step time, peak memory, TFLOP/s, MFU
            (benchmarks/step_cost.py); a batch that runs out of memory is reported and halved.
  sampler   cached vs naive sampler on the device (benchmarks/bench_sample.py): the whole volume at the demo
            configs (identical codes), a timed prefix at the bench configs (naive ÷ cached, cached ÷ forward).
  pipeline  the demo pipeline through `vqvideo.cli.main`: fit VQ-VAE, precompute, fit both priors (a few steps each,
            bf16-mixed), predict; the demo YAMLs with command-line overrides, outputs in a temporary folder; then a
            few VQ-VAE steps with decode_device: gpu (skipped, with the reason, where the GPU decoder cannot run).
  decode    GPU clip decoding (decode_device: gpu; PyNvVideoCodec, `pip install 'vqvideo[gpu]'`) vs every CPU core,
            at 64 and 256 px through the DataModule: clips/s, pixel difference, same bytes twice
            (benchmarks/bench_gpu_decode.py); "skipped: <why>" where the GPU decoder cannot run.
  compile   torch.compile on vs off for the paper VQ-VAE's training step: compile time and step time.
`--device cpu` runs steps, sampler and pipeline with the same code at tiny shapes in float32 (the YAMLs shrunk by
TINY below); decode and compile are CUDA-only and reported as skipped. Progress is printed as it goes; the last
stdout line is one JSON object (keys: sampler.identical, memory, step, tflops, mfu per stage, failed, parts, ...),
and the same report is written as a Markdown table to --out (and JSON beside it), atomically.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from bench_gpu_decode import measure as measure_gpu_decode
from bench_sample import bench_bottom, bench_top, ratios
from gpu_check_report import markdown
from omegaconf import OmegaConf
from step_cost import device_peak, free_memory, measure_stage

from vqvideo.files import atomic_write, atomic_write_json
from vqvideo.lit.trainer_options import process_torch_flags

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
STAGES = ("vqvae", "top_prior", "bottom_prior")
PARTS = ("steps", "sampler", "pipeline", "decode", "compile")
CUDA_ONLY = ("decode", "compile")
TINY_PRIOR = {"hidden_channels": 16, "residual_channels": 16, "num_layers": 2, "num_attention_layers": 1,
              "num_heads": 2, "cond_embed_dim": 8, "cond_channels": 8, "cond_residual_channels": 8,
              "num_cond_blocks": 1}
TINY = {  # --device cpu: every experiment's YAMLs shrunk to 16×32×32 clips and narrow networks
    "vqvae": {"model": {"init_args": {"vqvae": {"hidden_channels": 16, "residual_channels": 8,
                                                "num_residual_layers": 1, "code_dim": 8}}},
              "data": {"init_args": {"resolution": 32, "batch_size": 2, "num_workers": 0, "max_clips_per_video": 1}}},
    "top_prior": {"model": {"init_args": {"prior": {**TINY_PRIOR, "cond_downsampled_channels": 8}}},
                  "data": {"init_args": {"batch_size": 2}}},
    "bottom_prior": {"model": {"init_args": {"prior": {**TINY_PRIOR, "cond_top_channels": 8,
                                                       "cond_window_channels": 8}}},
                     "data": {"init_args": {"batch_size": 2}}},
}
PIPELINE = {"precompute": {"data": {"max_clips_per_video": 2, "num_workers": 0}}}  # a few clips are enough
GPU_DECODE = {"vqvae": {"data": {"init_args": {"decode_device": "gpu"}}}}  # the pipeline's decode_device gpu stage


class PartSkipped(Exception):
    """A part (or stage) that cannot run on this machine, and why: reported as skipped, not failed."""


@dataclass(frozen=True)
class Profile:
    """What differs between the GPU run and its CPU stand-in."""

    device: str
    accelerator: str  # Lightning's name for it
    precision: str  # the pipeline's trainer.precision
    autocast: torch.dtype | None  # the paper steps' autocast dtype (None: float32)
    shrink: dict = field(default_factory=dict)  # YAML overrides per stage (TINY on CPU)
    pipeline_steps: int = 3
    bench_batch: int = 4
    bench_prefix: int = 8
    warmup_steps: int = 2
    timed_steps: int = 3
    threads: int | None = None  # torch CPU threads (None: torch's default)

    @property
    def trainer_devices(self) -> str:
        """Lightning's --trainer.devices for the one device of this check: one device, or cuda:1 → "1," (GPU 1)."""
        index = torch.device(self.device).index
        return "1" if index is None else f"{index},"


def profile_for(device: str) -> Profile:
    if torch.device(device).type == "cuda":
        return Profile(device, "gpu", "bf16-mixed", torch.bfloat16)
    # one thread: tiny ops on a shared CPU run several times slower with two (see tests/conftest.py)
    return Profile(device, "cpu", "32-true", None, TINY, pipeline_steps=2, bench_batch=2, bench_prefix=4,
                   warmup_steps=1, timed_steps=2, threads=1)


def merged(*overrides: dict) -> dict:
    result = OmegaConf.create({})
    for override in overrides:
        result = OmegaConf.merge(result, override)
    return OmegaConf.to_container(result)


def derive_experiment(experiment: str, work: Path, overrides: dict) -> Path:
    """experiments/<experiment>/*.yaml → work/<experiment>/: outputs moved to work/<experiment>/run (so a prior
    finds no code cache and takes its latent facts from the vqvae.yaml beside it, as `vqvideo describe` does, until
    the pipeline writes one), with overrides[stage] merged in."""
    target = work / experiment
    target.mkdir(parents=True, exist_ok=True)
    for source in sorted((EXPERIMENTS / experiment).glob("*.yaml")):
        text = source.read_text().replace(f"outputs/{experiment}", str(target / "run"))
        config = OmegaConf.merge(OmegaConf.create(text), overrides.get(source.stem, {}))
        OmegaConf.save(config, target / source.name)
    return target


@contextlib.contextmanager
def isolated_torch_state():
    """Process-wide torch settings a stage may change, restored after it (as if it ran in its own process, like
    `vqvideo demo`'s stages): a Trainer with deterministic=True turns deterministic algorithms on (CUDA's nll_loss
    then refuses to run in the prior fits that follow), predict sets one thread."""
    threads = torch.get_num_threads()
    try:
        with process_torch_flags():
            yield
    finally:
        torch.set_num_threads(threads)


def attempt(name: str, function: Callable[[], dict]) -> dict:
    """{"ok", "seconds", "result" and/or "error"} of function(), its traceback printed on failure. A result listing
    `failed` sub-checks (each with its own error inside the result) makes the attempt fail too."""
    print(f"\n[gpu-check] ---- {name}", flush=True)
    start = time.perf_counter()
    try:
        with isolated_torch_state():
            result = function()
        failed = result.get("failed")
        outcome = {"ok": not failed, "result": result, **({"error": f"failed: {', '.join(failed)}"} if failed else {})}
    except PartSkipped as reason:
        outcome = {"ok": True, "skipped": str(reason)}
    except (Exception, SystemExit) as error:  # SystemExit: a CLI's argument error
        traceback.print_exc()
        outcome = {"ok": False, "error": f"{type(error).__name__}: {error}"[-1000:]}
    outcome["seconds"] = round(time.perf_counter() - start, 2)
    status = f"skipped ({outcome['skipped']})" if "skipped" in outcome else "ok" if outcome["ok"] else \
        f"FAILED ({outcome['error'][:200]})"
    print(f"[gpu-check] {name}: {status} in {outcome['seconds']:.1f} s", flush=True)
    return outcome


def device_broken(device: torch.device) -> str | None:
    """Why the device can no longer run anything (a CUDA error poisons the process), or None."""
    if device.type != "cuda":
        return None
    try:
        torch.ones(1, device=device).add_(1)
        torch.cuda.synchronize(device)
    except RuntimeError as error:
        return f"{type(error).__name__}: {error}"[:500]
    return None


# ----- parts ------------------------------------------------------------------------------------------
def check_steps(configs: dict[str, Path], profile: Profile) -> dict:
    """Each paper stage's training step; one stage's failure (e.g. out of memory at every batch) is its own."""
    device, results = torch.device(profile.device), {}
    peak_flops, peak_source = device_peak(device)
    for stage in STAGES:
        def measure(stage=stage) -> dict:
            cost = measure_stage(configs["kinetics600_256"] / f"{stage}.yaml", device, profile.autocast,
                                 profile.warmup_steps, profile.timed_steps)
            return {**asdict(cost), "tflops": cost.flops_per_second / 1e12, "mfu": cost.flops_per_second / peak_flops}
        results[stage] = attempt(f"steps: {stage}", measure)
        free_memory(device)
    failed = [stage for stage, outcome in results.items() if not outcome["ok"]]
    return {"peak_tflops": peak_flops / 1e12, "peak_source": peak_source, "stages": results, "failed": failed}


def check_sampler(configs: dict[str, Path], profile: Profile) -> dict:
    """Whole volumes at the demo configs (exactness), a timed naive prefix at the bench configs (speed)."""
    rows = {"demo": {}, "bench": {}}
    for prior, bench in (("top", bench_top), ("bottom", bench_bottom)):
        demo = bench(2, None, 0, configs["demo"], profile.device)
        timed = bench(profile.bench_batch, profile.bench_prefix, 0, configs["bench"], profile.device)
        rows["demo"][prior] = asdict(demo)
        rows["bench"][prior] = {**asdict(timed), **ratios(timed)}
        print(f"[gpu-check] sampler {prior}: identical at demo configs {demo.identical}, bench naive/cached "
              f"{ratios(timed)['naive_over_cached']}, cached/forward {ratios(timed)['cached_over_forward']}")
    identical = all(row["identical"] for group in rows.values() for row in group.values())
    shapes = "both shrunk to tiny shapes (CPU profile)" if profile.shrink else "bench: the paper's latent shapes"
    note = (f"demo: whole volumes, naive vs cached; bench: naive timed over its first {profile.bench_prefix} "
            f"positions (per bottom slice) and scaled; batch 2 / {profile.bench_batch}; {shapes}")
    return {"identical": identical, "note": note, **rows}


def pipeline_commands(config_dir: Path, profile: Profile) -> dict[str, list[str]]:
    """The demo's stages as `vqvideo` command lines: the demo YAMLs plus the check's trainer overrides."""
    run, steps = config_dir / "run", str(profile.pipeline_steps)
    trainer = ["--trainer.accelerator", profile.accelerator, "--trainer.devices", profile.trainer_devices,
               "--trainer.precision", profile.precision, "--trainer.max_steps", steps,
               "--trainer.val_check_interval", steps, "--trainer.limit_val_batches", "2",
               "--trainer.enable_progress_bar", "false"]
    fit = lambda stage: ["fit", "--config", str(config_dir / f"{stage}.yaml"), *trainer]  # noqa: E731
    return {
        "vqvae": fit("vqvae"),
        "precompute": ["precompute", "--config", str(config_dir / "precompute.yaml"), "--trainer.accelerator",
                       profile.accelerator, "--trainer.devices", profile.trainer_devices,
                       "--trainer.enable_progress_bar", "false"],
        "top_prior": fit("top_prior"),
        "bottom_prior": fit("bottom_prior"),
        "predict": ["predict", "--vqvae", str(run / "vqvae.ckpt"), "--top", str(run / "top_prior.ckpt"),
                    "--bottom", str(run / "bottom_prior.ckpt"), "--input", "embedded:val",
                    "--out", str(run / "predictions"), "--num_samples", "1", "--device", profile.device],
    }


def run_command(command: list[str]) -> dict:
    from vqvideo.cli import main as vqvideo

    code = vqvideo(command)
    if code:
        raise RuntimeError(f"exit status {code}")
    return {"command": "vqvideo " + " ".join(command)}


def fit_with_gpu_decoding(configs: dict[str, Path], profile: Profile) -> dict:
    """A few demo VQ-VAE steps with decode_device: gpu (clips decoded on the GPU after each batch's transfer)."""
    from vqvideo.data.gpu_decode import frame_source
    from vqvideo.data.sources import embedded_clips
    from vqvideo.data.video import GpuDecodeUnavailable

    device = torch.device(profile.device)
    if device.type != "cuda":
        raise PartSkipped(f"CUDA only (this run: {profile.device})")
    try:
        frame_source(device.index or 0, str(embedded_clips()[0]))
    except GpuDecodeUnavailable as error:
        raise PartSkipped(str(error)) from None
    return run_command(pipeline_commands(configs["demo_gpu_decode"], profile)["vqvae"])


def check_pipeline(configs: dict[str, Path], profile: Profile) -> dict:
    """Every stage runs even when an earlier one failed; each reports its own error."""
    stages = {name: attempt(f"pipeline: {name}", lambda command=command: run_command(command))
              for name, command in pipeline_commands(configs["demo"], profile).items()}
    stages["vqvae_gpu_decode"] = attempt("pipeline: vqvae_gpu_decode", lambda: fit_with_gpu_decoding(configs, profile))
    return {"stages": stages, "failed": [name for name, stage in stages.items() if not stage["ok"]]}


def check_decode(profile: Profile) -> dict:
    """GPU vs CPU clip decoding (benchmarks/bench_gpu_decode.py); skipped, saying why, where it cannot run."""
    from vqvideo.data.video import GpuDecodeUnavailable

    try:
        return measure_gpu_decode(torch.device(profile.device))
    except GpuDecodeUnavailable as error:
        raise PartSkipped(str(error)) from None


def check_compile(configs: dict[str, Path], profile: Profile) -> dict:
    """The paper VQ-VAE's step eager and with torch.compile (compile time = first compiled step − median step)."""
    device, config = torch.device(profile.device), configs["kinetics600_256"] / "vqvae.yaml"
    eager = measure_stage(config, device, profile.autocast, profile.warmup_steps, profile.timed_steps)
    free_memory(device)
    compiled = measure_stage(config, device, profile.autocast, profile.warmup_steps, profile.timed_steps,
                             batch_size=eager.batch_size, compile_core=True)
    return {"batch_size": eager.batch_size, "eager_step_s": eager.step_s, "compiled_step_s": compiled.step_s,
            "compile_s": compiled.first_step_s - compiled.step_s, "speedup": eager.step_s / compiled.step_s}


# ----- the run ----------------------------------------------------------------------------------------
def run_parts(parts: list[str], configs: dict[str, Path], profile: Profile,
              after_each: Callable[[dict], None]) -> dict[str, dict]:
    """Outcome per part; after_each(outcomes so far) runs after every part (a killed run keeps its report)."""
    functions = {"steps": lambda: check_steps(configs, profile), "sampler": lambda: check_sampler(configs, profile),
                 "pipeline": lambda: check_pipeline(configs, profile), "decode": lambda: check_decode(profile),
                 "compile": lambda: check_compile(configs, profile)}
    outcomes, broken = {}, None
    for name in parts:
        if torch.device(profile.device).type != "cuda" and name in CUDA_ONLY:
            outcomes[name] = {"ok": True, "skipped": f"CUDA only (this run: {profile.device})", "seconds": 0.0}
        elif broken:
            outcomes[name] = {"ok": False, "error": f"not run: the device failed earlier ({broken})", "seconds": 0.0}
        else:
            outcomes[name] = attempt(name, functions[name])
            broken = None if outcomes[name]["ok"] else device_broken(torch.device(profile.device))
        after_each(outcomes)
    return outcomes


def part_result(outcomes: dict, name: str) -> dict:
    outcome = outcomes.get(name, {"skipped": "not run (not in --parts, or not reached yet)"})
    if "result" in outcome:
        return outcome["result"]
    if "skipped" in outcome:
        return {"skipped": outcome["skipped"]}
    return {"error": outcome["error"]}


def per_stage(steps: dict, key: str, scale: float | None = None) -> dict:
    """{stage: its step result's `key`} (None where the stage failed), numbers multiplied by `scale`."""
    values = {stage: (outcome.get("result") or {}).get(key) for stage, outcome in steps.get("stages", {}).items()}
    return {stage: value * scale if scale and value is not None else value for stage, value in values.items()}


def failures(outcomes: dict) -> list[str]:
    """"part", or "part: sub-check" for the parts that report their own sub-checks."""
    found = []
    for name, outcome in outcomes.items():
        if not outcome["ok"]:
            inner = (outcome.get("result") or {}).get("failed")
            found += [f"{name}: {sub}" for sub in inner] if inner else [name]
    return found


def summary(outcomes: dict, profile: Profile, started: float) -> dict:
    steps, sampler = part_result(outcomes, "steps"), part_result(outcomes, "sampler")
    on_gpu = profile.accelerator == "gpu"
    return {
        "check": "vqvideo gpu-check", "profile": "cuda, bf16" if on_gpu else "cpu: tiny shapes, float32",
        "device": torch.cuda.get_device_name(profile.device) if on_gpu else "cpu",
        "torch": torch.__version__, "cuda": torch.version.cuda, "date": datetime.date.today().isoformat(),
        "failed": failures(outcomes),
        "parts": {name: {key: value for key, value in outcome.items() if key != "result"}
                  for name, outcome in outcomes.items()},
        "sampler": {"identical": sampler.get("identical"), **sampler},
        "step": per_stage(steps, "step_s"), "memory": per_stage(steps, "peak_memory_bytes", 2**-30),
        "tflops": per_stage(steps, "tflops"), "mfu": per_stage(steps, "mfu"),
        "batch_size": per_stage(steps, "batch_size"), "oom_batch_sizes": per_stage(steps, "oom_batch_sizes"),
        "peak": {"tflops": steps.get("peak_tflops"), "source": steps.get("peak_source")},
        "notes": {"memory": "GiB, torch.cuda.max_memory_allocated per stage (None on CPU)",
                  "tflops": "3 × forward FLOPs (FlopCounterMode, vqvideo describe) × batch / median step time"},
        "pipeline": part_result(outcomes, "pipeline"), "decode": part_result(outcomes, "decode"),
        "compile": part_result(outcomes, "compile"), "total_seconds": round(time.perf_counter() - started, 1),
    }


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:1, ... or cpu (tiny shapes, float32)")
    parser.add_argument("--out", type=Path, default=Path("outputs/gpu_check.md"), help="Markdown report (+ .json)")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    parser.add_argument("--workdir", type=Path, default=None, help="keep configs and outputs here (default: temp)")
    args = parser.parse_args(argv)
    args.parts = [part for part in args.parts.split(",") if part]
    unknown = sorted(set(args.parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown parts {unknown}: choose from {', '.join(PARTS)}")
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: this torch ({torch.__version__}) sees no CUDA GPU; "
                     "run `make gpu-check DEVICE=cpu` for the CPU smoke test")
    return args


def write_report(out: Path, report: dict) -> None:
    atomic_write(out, lambda temp: temp.write_text(markdown(report)))
    atomic_write_json(out.with_suffix(".json"), report, sort_keys=False)


def main(argv=None) -> int:
    args, started = parse_args(argv), time.perf_counter()
    profile = profile_for(args.device)
    if profile.threads:
        torch.set_num_threads(profile.threads)
    with contextlib.ExitStack() as stack:
        work = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gpu_check_")))
        configs = {"demo": derive_experiment("demo", work, merged(profile.shrink, PIPELINE)),
                   "demo_gpu_decode": derive_experiment("demo", work / "gpu_decode",
                                                        merged(profile.shrink, PIPELINE, GPU_DECODE)),
                   "bench": derive_experiment("bench", work, profile.shrink),
                   "kinetics600_256": derive_experiment("kinetics600_256", work, profile.shrink)}
        outcomes = run_parts(args.parts, configs, profile,
                             after_each=lambda done: write_report(args.out, summary(done, profile, started)))
    report = summary(outcomes, profile, started)
    write_report(args.out, report)
    print(f"\n[gpu-check] report: {args.out} (+ {args.out.with_suffix('.json').name}); failed: "
          f"{', '.join(report['failed']) or 'nothing'}; {report['total_seconds']:.0f} s")
    print(json.dumps(report))
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
