"""Is channels-last worth it, and where is it wrong? The demo VQ-VAE's bf16 step in both layouts, then the check.

    python benchmarks/bench_channels_last.py [--rounds 5] [--trials 20]   (make bench-channels-last)

1. Step time: the demo VQ-VAE (experiments/demo/vqvae.yaml) on one random batch of its training shape, forward +
   backward under CPU bf16 autocast, in the default layout and in channels_last_3d, taking turns for `--rounds`
   rounds after one warm-up each; medians and their ratio.
2. The demo VQ-VAE's convolutions: how many of `--trials` checks (`vqvideo.models.memory_format`, each on a new
   random input) each passes at its input shape under bf16 autocast; VQVAEModule adopts channels-last only if
   every one passes.
3. Where torch's kernels go wrong: a 3x3x3 conv3d (padding 1) over depth x batch x width, the number of `--trials`
   checks that fail in bf16 autocast and in float32, and in bf16 how often each quantity (output, input gradient,
   weight gradient, bias gradient) was the one that differed.
Prints tables, then one JSON object as the last stdout line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections import Counter
from pathlib import Path

import torch

from vqvideo.lit.configs import vqvae_and_batch
from vqvideo.models.memory_format import QUANTITIES, channels_last_mismatches, conv_input_shapes
from vqvideo.models.vqvae import VQVAE

DEMO_VQVAE = Path(__file__).resolve().parents[1] / "experiments" / "demo" / "vqvae.yaml"
DEPTHS, BATCHES, WIDTHS = (1, 2, 4, 8), (1, 2, 8), (4, 16, 64)


def bf16_autocast():
    return torch.autocast("cpu", dtype=torch.bfloat16)


def step_ms(model: VQVAE, video: torch.Tensor) -> float:
    start = time.perf_counter()
    with bf16_autocast():
        loss = (model(video).reconstruction.float() - video).square().mean()
    loss.backward()
    return 1000 * (time.perf_counter() - start)


def time_layouts(model: VQVAE, video: torch.Tensor, rounds: int) -> dict[str, float]:
    """Median ms per bf16 forward + backward, default layout vs channels_last_3d, taking turns."""
    layouts = {"default": (torch.contiguous_format, video),
               "channels_last": (torch.channels_last_3d, video.contiguous(memory_format=torch.channels_last_3d))}
    times: dict[str, list[float]] = {name: [] for name in layouts}
    for round_ in range(rounds + 1):
        for name, (memory_format, batch) in layouts.items():
            model.to(memory_format=memory_format)
            elapsed = step_ms(model, batch)
            if round_ > 0:
                times[name].append(elapsed)
    model.to(memory_format=torch.contiguous_format)
    return {name: sorted(values)[len(values) // 2] for name, values in times.items()}


def failures(conv: torch.nn.Module, shape: tuple[int, ...], context, trials: int) -> Counter:
    """Over `trials` checks on new random inputs: Counter of "failed" and of each mismatched quantity."""
    generator, counts = torch.Generator().manual_seed(0), Counter()
    for _ in range(trials):
        mismatches = channels_last_mismatches(conv, shape, context, generator)
        counts.update(["failed"] * bool(mismatches) + mismatches)
    return counts


def demo_passes(model: VQVAE, video: torch.Tensor, trials: int) -> dict[str, int]:
    """{conv name: how many of `trials` channels-last checks it passed} at the demo's shapes, bf16 autocast."""
    return {name: trials - failures(model.get_submodule(name), tuple(shape), bf16_autocast, trials)["failed"]
            for name, shape in conv_input_shapes(model, video).items()}


def scan_failures(trials: int) -> list[dict]:
    """Per depth x batch x width: failed checks of a 3x3x3 conv3d on (B, C, depth, 8, 8), bf16 and float32, and
    in bf16 the failures per quantity."""
    rows = []
    for depth in DEPTHS:
        for batch in BATCHES:
            for width in WIDTHS:
                conv = torch.nn.Conv3d(width, width, 3, padding=1)
                shape = (batch, width, depth, 8, 8)
                bf16 = failures(conv, shape, bf16_autocast, trials)
                float32 = failures(conv, shape, contextlib.nullcontext, trials)
                rows.append({"depth": depth, "batch": batch, "width": width, "bf16": bf16["failed"],
                             "float32": float32["failed"], "bf16_by_quantity": {q: bf16[q] for q in QUANTITIES}})
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per layout after one warm-up")
    parser.add_argument("--trials", type=int, default=20, help="checks per convolution")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    model, video = vqvae_and_batch(DEMO_VQVAE)
    times = time_layouts(model, video, args.rounds)
    speedup = times["default"] / times["channels_last"]
    print(f"demo VQ-VAE, bf16 forward + backward, batch {tuple(video.shape)}, {torch.get_num_threads()} threads, "
          f"median of {args.rounds}: default {times['default']:.0f} ms, channels-last {times['channels_last']:.0f} ms,"
          f" {speedup:.3f}x")
    passes = demo_passes(model, video, args.trials)
    print(f"\ndemo VQ-VAE convolutions: checks passed of {args.trials} (bf16 autocast)")
    for name, passed in passes.items():
        print(f"  {name:30s} {passed:3d}")
    rows = scan_failures(args.trials)
    print(f"\n3x3x3 conv3d on (batch, width, depth, 8, 8): checks failed of {args.trials}, bf16 / float32; in bf16, "
          f"how often each quantity differed")
    print("depth batch width   bf16 float32 | " + " ".join(f"{q:>11s}" for q in QUANTITIES))
    for row in rows:
        by_quantity = " ".join(f"{row['bf16_by_quantity'][q]:11d}" for q in QUANTITIES)
        print(f"{row['depth']:5d} {row['batch']:5d} {row['width']:5d} {row['bf16']:6d} {row['float32']:7d} | "
              f"{by_quantity}")
    print(json.dumps({"bench": "channels_last", "step_ms": {k: round(v, 1) for k, v in times.items()},
                      "speedup": round(speedup, 3), "trials": args.trials, "demo_checks_passed": passes,
                      "demo_all_pass": all(p == args.trials for p in passes.values()), "scan_failures": rows}))


if __name__ == "__main__":
    main()
