"""Is channels-last worth it, and where is it wrong? The demo VQ-VAE's bf16 step in both layouts, then the check.

    python benchmarks/bench_channels_last.py [--rounds 5] [--trials 20]   (make bench-channels-last)

1. Step time: the demo VQ-VAE (experiments/demo/vqvae.yaml) on one random batch of its training shape, forward +
   backward under CPU bf16 autocast, in the default layout and in channels_last_3d, taking turns for `--rounds`
   rounds after one warm-up each; medians and their ratio.
2. The demo VQ-VAE's convolutions: how many of `--trials` checks (`vqvideo.models.memory_format`) each passes at its
   input shape under bf16 autocast; VQVAEModule adopts channels-last only if every one passes.
3. Where torch's kernels go wrong: a 3x3x3 conv3d (padding 1) over depth x batch x width, the number of `--trials`
   checks that fail in bf16 autocast and in float32.
Prints tables, then one JSON object as the last stdout line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

import torch
import yaml

from vqvideo.models.memory_format import agrees_in_channels_last, conv_input_shapes
from vqvideo.models.vqvae import VQVAE, VQVAEConfig

DEMO_VQVAE = Path(__file__).resolve().parents[1] / "experiments" / "demo" / "vqvae.yaml"
DEPTHS, BATCHES, WIDTHS = (1, 2, 4, 8), (1, 2, 8), (4, 16, 64)


def bf16_autocast():
    return torch.autocast("cpu", dtype=torch.bfloat16)


def demo_vqvae_and_batch() -> tuple[VQVAE, torch.Tensor]:
    """The demo VQ-VAE (train mode) and a (B, 3, T, H, W) float32 batch in [-1, 1] of its training shape."""
    settings = yaml.safe_load(DEMO_VQVAE.read_text())
    data = settings["data"]["init_args"]
    model = VQVAE(VQVAEConfig(**settings["model"]["init_args"]["vqvae"])).train()
    size = (data["batch_size"], 3, data["num_frames"], data["resolution"], data["resolution"])
    return model, torch.rand(size, generator=torch.Generator().manual_seed(0)) * 2 - 1


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


def demo_passes(model: VQVAE, video: torch.Tensor, trials: int) -> dict[str, int]:
    """{conv name: how many of `trials` channels-last checks it passed} at the demo's shapes, bf16 autocast."""
    shapes = conv_input_shapes(model, video)
    return {name: sum(agrees_in_channels_last(model.get_submodule(name), tuple(shape), bf16_autocast, trials=1)
                      for _ in range(trials))
            for name, shape in shapes.items()}


def scan_failures(trials: int) -> list[dict]:
    """Per depth x batch x width: failed checks of a 3x3x3 conv3d on (B, C, depth, 8, 8), bf16 and float32."""
    rows = []
    for depth in DEPTHS:
        for batch in BATCHES:
            for width in WIDTHS:
                conv = torch.nn.Conv3d(width, width, 3, padding=1)
                shape = (batch, width, depth, 8, 8)
                failed = {name: sum(not agrees_in_channels_last(conv, shape, context, trials=1) for _ in range(trials))
                          for name, context in (("bf16", bf16_autocast), ("float32", contextlib.nullcontext))}
                rows.append({"depth": depth, "batch": batch, "width": width, **failed})
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per layout after one warm-up")
    parser.add_argument("--trials", type=int, default=20, help="checks per convolution")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    model, video = demo_vqvae_and_batch()
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
    print(f"\n3x3x3 conv3d on (batch, width, depth, 8, 8): checks failed of {args.trials}, bf16 / float32")
    print("depth batch width   bf16 float32")
    for row in rows:
        print(f"{row['depth']:5d} {row['batch']:5d} {row['width']:5d} {row['bf16']:6d} {row['float32']:7d}")
    print(json.dumps({"bench": "channels_last", "step_ms": {k: round(v, 1) for k, v in times.items()},
                      "speedup": round(speedup, 3), "trials": args.trials, "demo_checks_passed": passes,
                      "demo_all_pass": all(p == args.trials for p in passes.values()), "scan_failures": rows}))


if __name__ == "__main__":
    main()
