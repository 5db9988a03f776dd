"""Does training wait for data? Each stage's training step at its demo config, model alone vs real data.

    python benchmarks/bench_train.py [--steps 24] [--warmup 6] [--rounds 2] [--sweep]   (make bench-train)

For each stage (experiments/demo/vqvae.yaml, top_prior.yaml, bottom_prior.yaml; the priors read a tiny code cache
built on the fly from the bundled clips by a random-weight demo VQ-VAE, as benchmarks/bench_cache.py does), the
same LightningModule and Trainer loop run twice or more (`Trainer.fit`, no logger, no validation, no checkpoints):
  model   one epoch of real batches drawn once from the DataModule's train loader, then served from a list in
          memory (no worker, no decoding): forward + backward + optimizer step and Lightning's per-step work
  real    the DataModule's own train loader as the YAML configures it (workers, persistent), waits included
The step time is the mean interval between consecutive `on_train_batch_end` calls after `--warmup` steps, over
`--steps` steps (the demo's epochs are 3 batches, so epoch starts are inside the mean); with `--rounds` the
variants take turns and each keeps its best round, so a busy machine slows all of them alike.
The VQ-VAE's real step is measured with the YAML's `frames_in_memory_mb` (each video decoded once into RAM) and
without it (every clip decoded from its file). GFLOP/s: FlopCounterMode counts one forward pass of the training
step (loss included) and forward + backward is taken as 3x that; the counted forward + backward is printed beside
it as a check. The machine's peak: a large conv3d and a large matmul at 1 and 2 threads (FlopCounterMode counts).
The stages run in the main process at torch's default threads (as `vqvideo fit` does) unless --threads is given;
DataLoader workers run 1 thread each (torch's default in workers). `--sweep` also times the demo VQ-VAE's real
step for DataLoader workers 0/1/2 at 1 and the default threads, with and without the in-RAM frames.
Prints a table, then one JSON object as the last stdout line.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytorch_lightning as pl
import torch
import yaml
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from bench_cache import build_cache, demo_checkpoint
from vqvideo.describe import class_and_args

DEMO = Path(__file__).resolve().parents[1] / "experiments" / "demo"
STAGES = ("vqvae", "top_prior", "bottom_prior")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=24, help="steps timed per run, after the warm-up")
    parser.add_argument("--warmup", type=int, default=6, help="steps not timed at the start of each run")
    parser.add_argument("--rounds", type=int, default=2, help="each variant keeps its best of this many runs")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, as the demo)")
    parser.add_argument("--sweep", action="store_true", help="also time the VQ-VAE over workers 0/1/2 x threads")
    return parser.parse_args(argv)


class StepTimer(pl.Callback):
    """Wall time at the end of every training step."""

    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.ends.append(time.perf_counter())


def stage_config(stage: str) -> dict:
    return yaml.safe_load((DEMO / f"{stage}.yaml").read_text())


def build_datamodule(stage: str, workdir: Path, **overrides):
    """The stage's DataModule as its demo YAML configures it, reading the bench's own index and code cache."""
    config = stage_config(stage)
    data_class, data_args = class_and_args(DEMO / f"{stage}.yaml", config["data"], "data")
    if stage == "vqvae":
        data_args |= {"index_cache_dir": str(workdir / "index"), "progress": False}
    else:
        data_args |= {"cache_dir": str(workdir / "codes")}
    datamodule = data_class(**(data_args | overrides))
    datamodule.setup("fit")
    return datamodule


def build_module(stage: str, datamodule) -> pl.LightningModule:
    """The stage's LightningModule with the data facts linked in, as `vqvideo fit` does."""
    config = stage_config(stage)
    module_class, init_args = class_and_args(DEMO / f"{stage}.yaml", config["model"], "model")
    pl.seed_everything(config.get("seed_everything", 0), verbose=False)
    fact = {"clip_shape": datamodule.clip_shape} if stage == "vqvae" else {"code_spec": datamodule.code_spec}
    return module_class(**init_args, **fact)


def time_steps(stage: str, datamodule, loader: DataLoader, args) -> float:
    """Seconds per training step (steady state) of the stage's module fed by `loader`."""
    trainer_config = stage_config(stage)["trainer"]
    timer = StepTimer()
    trainer = pl.Trainer(accelerator=trainer_config.get("accelerator", "cpu"), devices=1,
                         precision=trainer_config.get("precision", "32-true"), max_steps=args.warmup + args.steps,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0, callbacks=[timer])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's hints (few workers, no validation) are expected here
        trainer.fit(build_module(stage, datamodule), train_dataloaders=loader)
    ends = timer.ends[args.warmup - 1:]
    return (ends[-1] - ends[0]) / (len(ends) - 1)


def memory_loader(datamodule) -> DataLoader:
    """One epoch of the stage's real train batches, drawn once and then served from memory by the main process."""
    batches = list(datamodule.train_dataloader())
    return DataLoader(batches, batch_size=None, shuffle=False, num_workers=0)


def step_flops(stage: str, datamodule, batch: dict) -> tuple[float, float]:
    """(forward FLOPs of one training step, counted forward + backward FLOPs) on a throwaway module."""
    module = build_module(stage, datamodule).train()
    with warnings.catch_warnings(), FlopCounterMode(display=False) as forward:
        warnings.simplefilter("ignore")  # self.log without a Trainer
        with torch.no_grad():
            module.training_step(batch, 0)
    with warnings.catch_warnings(), FlopCounterMode(display=False) as both:
        warnings.simplefilter("ignore")
        module.training_step(batch, 0).backward()
    return forward.get_total_flops(), both.get_total_flops()


def peak_gflops(threads: int) -> dict[str, float]:
    """GFLOP/s of a large conv3d and a large matmul (forward, float32) at `threads` torch threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    conv = torch.nn.Conv3d(64, 64, 3, padding=1)
    video, left, right = torch.randn(2, 64, 16, 32, 32), torch.randn(2048, 2048), torch.randn(2048, 2048)
    rates = {}
    with torch.no_grad():
        for name, run in (("conv3d", lambda: conv(video)), ("matmul", lambda: left @ right)):
            with FlopCounterMode(display=False) as counter:
                run()
            best = min(_seconds(run) for _ in range(3))
            rates[name] = counter.get_total_flops() / best / 1e9
    torch.set_num_threads(previous)
    return rates


def _seconds(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def stage_variants(stage: str, workdir: Path) -> dict:
    """name -> DataModule for the real-data runs of a stage (the VQ-VAE with and without the in-RAM frames)."""
    variants = {"real": build_datamodule(stage, workdir)}
    if stage == "vqvae":
        variants["real_decoding_per_clip"] = build_datamodule(stage, workdir, frames_in_memory_mb=None)
    return variants


def measure_stage(stage: str, workdir: Path, args) -> dict:
    variants = stage_variants(stage, workdir)
    model_loader = memory_loader(variants["real"])
    loaders = {"model": model_loader} | {name: dm.train_dataloader() for name, dm in variants.items()}
    best = {name: float("inf") for name in loaders}
    for _ in range(args.rounds):
        for name, loader in loaders.items():
            best[name] = min(best[name], time_steps(stage, variants["real"], loader, args))
    forward, counted = step_flops(stage, variants["real"], next(iter(model_loader)))
    result = {"model_step_s": best["model"], "real_step_s": best["real"],
              "real_over_model": best["real"] / best["model"], "gflops_per_s": 3 * forward / best["model"] / 1e9,
              "forward_gflop": forward / 1e9, "counted_forward_backward_gflop": counted / 1e9,
              "batch_size": variants["real"].hparams.batch_size, "num_workers": variants["real"].hparams.num_workers}
    if stage == "vqvae":
        result |= {"real_step_s_decoding_per_clip": best["real_decoding_per_clip"],
                   "real_over_model_decoding_per_clip": best["real_decoding_per_clip"] / best["model"],
                   "frames_in_memory_mb": variants["real"].hparams.frames_in_memory_mb}
    return result


def sweep_vqvae(workdir: Path, args) -> list[dict]:
    """The demo VQ-VAE's real step for workers 0/1/2 x threads 1/default, in-RAM frames or not."""
    rows, default_threads = [], torch.get_num_threads()
    for threads in sorted({1, default_threads}):
        torch.set_num_threads(threads)
        reference = build_datamodule("vqvae", workdir)
        model = time_steps("vqvae", reference, memory_loader(reference), args)
        for in_memory in (True, False):
            for workers in (0, 1, 2):
                overrides = {"num_workers": workers} | ({} if in_memory else {"frames_in_memory_mb": None})
                datamodule = build_datamodule("vqvae", workdir, **overrides)
                real = time_steps("vqvae", datamodule, datamodule.train_dataloader(), args)
                rows.append({"threads": threads, "num_workers": workers, "frames_in_memory": in_memory,
                             "model_step_s": model, "real_step_s": real, "real_over_model": real / model})
    torch.set_num_threads(default_threads)
    return rows


def build_code_cache(workdir: Path) -> None:
    """The bundled clips encoded by a random-weight demo VQ-VAE into workdir/codes (bench_cache's precompute)."""
    checkpoint = demo_checkpoint(workdir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        build_cache(checkpoint, workdir / "codes", SimpleNamespace(num_workers=1, device="cpu"))


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)  # one "GPU available" banner per fit
    if args.threads:
        torch.set_num_threads(args.threads)
    peak = {f"{name}_{threads}_thread{'s' if threads > 1 else ''}": rate for threads in (1, 2)
            for name, rate in peak_gflops(threads).items()}
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        workdir = Path(tmp)
        build_code_cache(workdir)
        stages = {stage: measure_stage(stage, workdir, args) for stage in STAGES}
        sweep = sweep_vqvae(workdir, args) if args.sweep else []
    print_table(args, stages, peak, sweep)
    result = {"bench": "train", "stages": {stage: _rounded(values) for stage, values in stages.items()},
              "peak_gflops_per_s": _rounded(peak), "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
              "steps": args.steps, "warmup": args.warmup, "rounds": args.rounds}
    if sweep:
        result["vqvae_sweep"] = [_rounded(row) for row in sweep]
    print(json.dumps(result))


def _rounded(values: dict) -> dict:
    return {key: round(value, 4) if isinstance(value, float) else value for key, value in values.items()}


def print_table(args, stages: dict, peak: dict, sweep: list[dict]) -> None:
    print(f"\ntraining step per stage at its demo config: {torch.get_num_threads()} torch threads in the main process, "
          f"{os.cpu_count()} CPUs, mean of {args.steps} steps after {args.warmup}, best of {args.rounds} rounds")
    print(f"{'stage':<14}{'workers':>8}{'model s':>9}{'real s':>9}{'real/model':>11}"
          f"{'GFLOP/s':>9}{'fwd GFLOP':>10}{'fwd+bwd counted':>16}")
    for stage, row in stages.items():
        print(f"{stage:<14}{row['num_workers']:>8}{row['model_step_s']:>9.3f}{row['real_step_s']:>9.3f}"
              f"{row['real_over_model']:>11.3f}{row['gflops_per_s']:>9.1f}{row['forward_gflop']:>10.2f}"
              f"{row['counted_forward_backward_gflop']:>16.2f}")
    vqvae = stages["vqvae"]
    print(f"vqvae without the in-RAM frames (frames_in_memory_mb: null, every clip decoded from its file): "
          f"real {vqvae['real_step_s_decoding_per_clip']:.3f} s, real/model "
          f"{vqvae['real_over_model_decoding_per_clip']:.3f}; with frames_in_memory_mb: "
          f"{vqvae['frames_in_memory_mb']}: {vqvae['real_over_model']:.3f}")
    print("GFLOP/s = 3 x counted forward FLOPs / model step (forward + backward taken as 3 forwards)")
    print("peak GFLOP/s (forward, float32): " + ", ".join(f"{name} {rate:.1f}" for name, rate in peak.items()))
    if sweep:
        print(f"\ndemo VQ-VAE real step by setting\n{'threads':>8}{'workers':>8}{'frames in RAM':>14}"
              f"{'model s':>9}{'real s':>9}{'real/model':>11}")
        for row in sweep:
            print(f"{row['threads']:>8}{row['num_workers']:>8}{str(row['frames_in_memory']):>14}"
                  f"{row['model_step_s']:>9.3f}{row['real_step_s']:>9.3f}{row['real_over_model']:>11.3f}")


if __name__ == "__main__":
    main()
