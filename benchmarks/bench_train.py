"""Does training wait for data? Each stage's training step at its demo config, model alone vs real data.

    python benchmarks/bench_train.py [--cycles 7] [--sweep]   (make bench-train)

For each stage (experiments/demo/vqvae.yaml, top_prior.yaml, bottom_prior.yaml; the priors read a tiny code cache
built on the fly from the bundled clips by a random-weight demo VQ-VAE, as benchmarks/bench_cache.py does), the
stage's LightningModule trains in one `Trainer.fit` (no logger, validation or checkpoints) on epochs that take
turns between sources of batches:
  model   one epoch of real batches drawn once from the DataModule's train loader, then served from a list in
          memory (no worker, no decoding): the step is forward + backward + optimizer step and Lightning's work
  real    the DataModule's own train loader as the YAML configures it (workers, persistent), waits included;
          for the VQ-VAE twice: with the YAML's `frames_in_memory_mb` (each video decoded once into RAM) and
          without it (every clip decoded from its file)
Each step's time is the interval between two step ends with the wait for its own batch moved into it (Lightning
fetches one batch ahead); a source's step time is the median over cycles of its epoch's mean step, and
real_over_model the median over cycles of the two in the same cycle. The first cycle is warm-up. Taking turns
every few seconds is what makes the ratio hold on a shared machine, where other jobs slow everything 3x for
minutes at a time. GFLOP/s: FlopCounterMode counts one forward pass of the training step (loss included), and
forward + backward is taken as 3x that (the counted forward + backward is printed beside it as a check); the
machine's peak: a large conv3d and a large matmul, forward, in float32 and under bf16 autocast, at 1 and 2 threads.
Each stage runs in its YAML's precision, in the main process at torch's default threads, as `vqvideo fit` does (or
--threads); DataLoader workers run 1 thread each (torch's default in workers). `--sweep` also times the demo VQ-VAE
for DataLoader workers 0/1/2 at 1 and the default threads, with and without the frames in RAM. Prints a table,
then one JSON object as the last stdout line.
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
from typing import NamedTuple

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from bench_cache import build_cache, demo_checkpoint
from vqvideo.lit.configs import class_and_args
from vqvideo.lit.configs import read_yaml

DEMO = Path(__file__).resolve().parents[1] / "experiments" / "demo"
STAGES = ("vqvae", "top_prior", "bottom_prior")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=7, help="turns of every source; the first is warm-up")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, as the demo)")
    parser.add_argument("--sweep", action="store_true", help="also time the VQ-VAE over workers 0/1/2 x threads")
    return parser.parse_args(argv)


class Fetch(NamedTuple):
    source: str
    cycle: int
    start: float
    end: float


class TakingTurns:
    """Batches from one epoch of each source in turn, `cycles` times, recording each fetch: which source, and the
    wall time it took (creating the epoch's iterator included: a persistent worker starts an epoch only then)."""

    def __init__(self, sources: dict, cycles: int) -> None:
        self.sources, self.cycles = sources, cycles
        self.fetched: list[Fetch] = []

    def __len__(self) -> int:
        return self.cycles * sum(len(source) for source in self.sources.values())

    def __iter__(self):
        for cycle in range(self.cycles):
            for name, source in self.sources.items():
                start = time.perf_counter()
                batches = iter(source)
                for batch in batches:
                    self.fetched.append(Fetch(name, cycle, start, time.perf_counter()))
                    yield batch
                    start = time.perf_counter()


class StepTimer(pl.Callback):
    """Wall time at the end of every training step."""

    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.ends.append(time.perf_counter())


def stage_config(stage: str) -> dict:
    return read_yaml(DEMO / f"{stage}.yaml")


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


def fit_taking_turns(stage: str, datamodule, sources: dict, cycles: int) -> dict[str, list[float]]:
    """Train the stage's module on `sources` taking turns; per source, its mean step time in each cycle after
    the first."""
    trainer_config = stage_config(stage)["trainer"]
    turns, timer = TakingTurns(sources, cycles), StepTimer()
    trainer = pl.Trainer(accelerator=trainer_config.get("accelerator", "cpu"), devices=1,
                         precision=trainer_config.get("precision", "32-true"), max_steps=len(turns), max_epochs=1,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0, callbacks=[timer])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's hints (few workers, no validation) are expected here
        trainer.fit(build_module(stage, datamodule), train_dataloaders=turns)
    per_turn: dict[tuple[str, int], list[float]] = {}
    for fetch, seconds in zip(turns.fetched[1:], step_seconds(timer.ends, turns.fetched)):
        if fetch.cycle > 0:
            per_turn.setdefault((fetch.source, fetch.cycle), []).append(seconds)
    return {name: [float(np.mean(per_turn[name, cycle])) for cycle in range(1, cycles)] for name in sources}


def step_seconds(ends: list[float], fetched: list[Fetch]) -> list[float]:
    """Seconds of steps 1, 2, ...: the interval since the previous step's end, less the fetch of a later batch
    that happened in it (Lightning fetches one batch ahead), plus the fetch of this step's own batch."""
    seconds = []
    for step in range(1, len(ends)):
        inside = sum(f.end - f.start for f in fetched if ends[step - 1] < f.end <= ends[step])
        own = fetched[step].end - fetched[step].start
        seconds.append(ends[step] - ends[step - 1] - inside + own)
    return seconds


def summarize(per_cycle: dict[str, list[float]], reference: str = "model") -> dict[str, tuple[float, float]]:
    """source -> (median step seconds, median over cycles of its step / the reference's step in the same cycle)."""
    return {name: (float(np.median(values)),
                   float(np.median(np.array(values) / np.array(per_cycle[reference]))))
            for name, values in per_cycle.items()}


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
    """GFLOP/s of a large conv3d and a large matmul (forward), float32 and under bf16 autocast (what a bf16-mixed
    stage runs), at `threads` torch threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    conv = torch.nn.Conv3d(64, 64, 3, padding=1)
    video, left, right = torch.randn(2, 64, 16, 32, 32), torch.randn(2048, 2048), torch.randn(2048, 2048)
    rates = {}
    with torch.no_grad():
        for name, run in (("conv3d", lambda: conv(video)), ("matmul", lambda: left @ right)):
            for suffix, bf16 in (("", False), ("_bf16", True)):
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    with FlopCounterMode(display=False) as counter:
                        run()
                    best = min(_seconds(run) for _ in range(3))
                rates[name + suffix] = counter.get_total_flops() / best / 1e9
    torch.set_num_threads(previous)
    return rates


def _seconds(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def stage_sources(stage: str, workdir: Path) -> tuple[object, dict]:
    """(the stage's DataModule, its sources: model, real, and for the VQ-VAE real without the frames in RAM)."""
    datamodule = build_datamodule(stage, workdir)
    sources = {"model": memory_loader(datamodule), "real": datamodule.train_dataloader()}
    if stage == "vqvae":
        sources["real_decoding_per_clip"] = build_datamodule(stage, workdir, frames_in_memory_mb=None).train_dataloader()
    return datamodule, sources


def measure_stage(stage: str, workdir: Path, args) -> dict:
    datamodule, sources = stage_sources(stage, workdir)
    times = summarize(fit_taking_turns(stage, datamodule, sources, args.cycles))
    forward, counted = step_flops(stage, datamodule, next(iter(sources["model"])))
    result = {"model_step_s": times["model"][0], "real_step_s": times["real"][0], "real_over_model": times["real"][1],
              "gflops_per_s": 3 * forward / times["model"][0] / 1e9, "forward_gflop": forward / 1e9,
              "counted_forward_backward_gflop": counted / 1e9, "batch_size": datamodule.hparams.batch_size,
              "num_workers": datamodule.hparams.num_workers,
              "precision": str(stage_config(stage)["trainer"].get("precision", "32-true"))}
    if stage == "vqvae":
        result |= {"real_step_s_decoding_per_clip": times["real_decoding_per_clip"][0],
                   "real_over_model_decoding_per_clip": times["real_decoding_per_clip"][1],
                   "frames_in_memory_mb": datamodule.hparams.frames_in_memory_mb}
    return result


def sweep_vqvae(workdir: Path, args) -> list[dict]:
    """The demo VQ-VAE's real step for workers 0/1/2 x threads 1/default, frames in RAM or not."""
    rows, default_threads = [], torch.get_num_threads()
    for threads in sorted({1, default_threads}):
        torch.set_num_threads(threads)
        for in_memory in (True, False):
            for workers in (0, 1, 2):
                overrides = {"num_workers": workers} | ({} if in_memory else {"frames_in_memory_mb": None})
                datamodule = build_datamodule("vqvae", workdir, **overrides)
                sources = {"model": memory_loader(datamodule), "real": datamodule.train_dataloader()}
                times = summarize(fit_taking_turns("vqvae", datamodule, sources, args.cycles))
                rows.append({"threads": threads, "num_workers": workers, "frames_in_memory": in_memory,
                             "model_step_s": times["model"][0], "real_step_s": times["real"][0],
                             "real_over_model": times["real"][1]})
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
              "cycles": args.cycles}
    if sweep:
        result["vqvae_sweep"] = [_rounded(row) for row in sweep]
    print(json.dumps(result))


def _rounded(values: dict) -> dict:
    return {key: round(value, 4) if isinstance(value, float) else value for key, value in values.items()}


def print_table(args, stages: dict, peak: dict, sweep: list[dict]) -> None:
    print(f"\ntraining step per stage at its demo config: {torch.get_num_threads()} torch threads in the main process, "
          f"{os.cpu_count()} CPUs; sources take turns by epoch, medians over {args.cycles - 1} cycles after 1 warm-up")
    print(f"{'stage':<14}{'precision':>11}{'workers':>8}{'model s':>9}{'real s':>9}{'real/model':>11}"
          f"{'GFLOP/s':>9}{'fwd GFLOP':>10}{'fwd+bwd counted':>16}")
    for stage, row in stages.items():
        print(f"{stage:<14}{row['precision']:>11}{row['num_workers']:>8}{row['model_step_s']:>9.3f}{row['real_step_s']:>9.3f}"
              f"{row['real_over_model']:>11.3f}{row['gflops_per_s']:>9.1f}{row['forward_gflop']:>10.2f}"
              f"{row['counted_forward_backward_gflop']:>16.2f}")
    vqvae = stages["vqvae"]
    print(f"vqvae without the in-RAM frames (frames_in_memory_mb: null, every clip decoded from its file): "
          f"real {vqvae['real_step_s_decoding_per_clip']:.3f} s, real/model "
          f"{vqvae['real_over_model_decoding_per_clip']:.3f}; with frames_in_memory_mb: "
          f"{vqvae['frames_in_memory_mb']}: {vqvae['real_over_model']:.3f}")
    print("GFLOP/s = 3 x counted forward FLOPs / model step (forward + backward taken as 3 forwards)")
    print("peak GFLOP/s (forward; _bf16: under bf16 autocast): " + ", ".join(f"{name} {rate:.1f}" for name, rate in peak.items()))
    if sweep:
        print(f"\ndemo VQ-VAE real step by setting\n{'threads':>8}{'workers':>8}{'frames in RAM':>14}"
              f"{'model s':>9}{'real s':>9}{'real/model':>11}")
        for row in sweep:
            print(f"{row['threads']:>8}{row['num_workers']:>8}{str(row['frames_in_memory']):>14}"
                  f"{row['model_step_s']:>9.3f}{row['real_step_s']:>9.3f}{row['real_over_model']:>11.3f}")


if __name__ == "__main__":
    main()
