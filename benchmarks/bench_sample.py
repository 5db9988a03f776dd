"""Sampling speed of both priors: the plain sampler vs the exact cached one, at the paper's latent shapes.

    python benchmarks/bench_sample.py [--batch-size 4] [--prefix 8] [--threads 1]   (make bench-sample)

Priors are built from experiments/bench/{top,bottom}_prior.yaml (Table 4 depth and attention placement at a
narrow width, untrained: the cost of sampling does not depend on the weights; the paper's latent shapes from
experiments/bench/vqvae.yaml), in eval mode, on random given codes. For each prior, in one run:
  forward   one teacher-forced pass over the sampled volume (top: 3×32×32; bottom: its 6 slices of 64×64, one
            pass per slice, as in training). The floor for any sampler is about this.
  naive     the plain sampler (a full prior pass per position), timed over its first --prefix positions and
            scaled by the position count: at these shapes a whole plain run takes hours. Said so in the table.
  cached    the cached sampler, the whole volume.
Exactness (`identical`), checked in the same run: the naive prefix codes equal the cached codes there; the
cached path's per-position logits equal the teacher-forced pass to 1e-4; and re-picking every code from the
teacher-forced logits with the same uniforms gives the cached codes everywhere (what the plain sampler would
return, the network being causal). Prints a table, then one JSON object as the last stdout line.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from vqvideo.describe import build_module
from vqvideo.sampling import NaiveSampler, get_sampler
from vqvideo.sampling.base import SamplingOptions, pick_codes, sampling_uniforms
from vqvideo.sampling.cached import teacher_forced_logits

BENCH = Path(__file__).resolve().parents[1] / "experiments" / "bench"
OPTIONS = SamplingOptions()


@dataclass
class Row:
    prior: str
    positions: int
    forward_s: float
    naive_s: float
    cached_s: float
    identical: bool
    max_logit_error: float


def timed(function):
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def build(config_name: str):
    """The bench prior (eval mode, no gradients) and its latent facts (paper shapes, experiments/bench/vqvae.yaml)."""
    module = build_module(BENCH / config_name, device="cpu")
    return module.code_spec, module.prior.eval().requires_grad_(False)


def random_codes(shape, num_codes, generator):
    return torch.randint(0, num_codes, shape, generator=generator)


def repicked(logits_per_position: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """logits (B, K, *volume), uniforms (B, *volume) → codes (B, *volume) picked as every sampler does."""
    flat = logits_per_position.movedim(1, -1).reshape(-1, logits_per_position.shape[1])
    return pick_codes(flat, uniforms.reshape(-1), OPTIONS).view(uniforms.shape)


def bench_top(batch_size: int, prefix: int, seed: int) -> Row:
    spec, prior = build("top_prior.yaml")
    generator = torch.Generator().manual_seed(seed)
    given_top = random_codes((batch_size, *spec.given_top_shape), spec.num_top_codes, generator)
    given_bottom = random_codes((batch_size, *spec.given_bottom_shape), spec.num_bottom_codes, generator)
    num_slices, height, width = spec.num_future_top_slices, *spec.top_shape[1:]
    positions = num_slices * height * width

    def sample(sampler):
        return sampler.sample_top(prior, given_top, given_bottom, num_slices, OPTIONS,
                                  torch.Generator().manual_seed(seed))

    sample(NaiveSampler(max_positions=1))  # warm-up (allocator, kernels)
    naive_s, naive_codes = timed(lambda: sample(NaiveSampler(max_positions=prefix)))
    cached_s, codes = timed(lambda: sample(get_sampler("cached")))
    with torch.no_grad():
        forward_s, logits = timed(lambda: prior(codes, given_top, given_bottom))
        cond = prior.condition(given_top, given_bottom, num_slices)
        cached_logits = teacher_forced_logits(prior.pixelcnn, codes, cond)
    uniforms = sampling_uniforms(batch_size, num_slices, height, width, torch.Generator().manual_seed(seed), "cpu")
    prefix_equal = torch.equal(naive_codes.flatten(1)[:, :prefix], codes.flatten(1)[:, :prefix])
    error = (cached_logits - logits).abs().max().item()
    identical = prefix_equal and error < 1e-4 and torch.equal(repicked(logits, uniforms), codes)
    return Row("top", positions, forward_s, naive_s / prefix * positions, cached_s, identical, error)


def bench_bottom(batch_size: int, prefix: int, seed: int) -> Row:
    spec, prior = build("bottom_prior.yaml")
    generator = torch.Generator().manual_seed(seed)
    top_codes = random_codes((batch_size, *spec.top_shape), spec.num_top_codes, generator)
    given_bottom = random_codes((batch_size, *spec.given_bottom_shape), spec.num_bottom_codes, generator)
    first, num_slices = spec.given_bottom_shape[0], spec.num_future_bottom_slices
    height, width = spec.bottom_shape[1:]
    positions = num_slices * height * width

    def sample(sampler):
        return sampler.sample_bottom(prior, top_codes, given_bottom, num_slices, OPTIONS,
                                     torch.Generator().manual_seed(seed))

    sample(NaiveSampler(max_positions=1))
    naive_s, naive_codes = timed(lambda: sample(NaiveSampler(max_positions=prefix)))
    cached_s, codes = timed(lambda: sample(get_sampler("cached")))
    future = codes[:, first:]  # (B, 6, Hb, Wb)
    with torch.no_grad():
        forward_s, logits = timed(lambda: slice_logits(prior, codes, top_codes, first))
        conds = [prior.condition(top_codes, codes, slice_index(batch_size, n)) for n in range(first, codes.shape[1])]
        cached_logits = torch.stack(
            [teacher_forced_logits(prior.pixelcnn, future[:, i : i + 1], cond[:, :, None])[:, :, 0]
             for i, cond in enumerate(conds)], 2)  # fmt: skip
    uniforms = sampling_uniforms(batch_size, num_slices, height, width, torch.Generator().manual_seed(seed), "cpu")
    prefix_equal = torch.equal(naive_codes[:, first].flatten(1)[:, :prefix], future[:, 0].flatten(1)[:, :prefix])
    error = (cached_logits - logits).abs().max().item()
    identical = prefix_equal and error < 1e-4 and torch.equal(repicked(logits, uniforms), future)
    return Row("bottom", positions, forward_s, naive_s / prefix * positions, cached_s, identical, error)


def slice_index(batch_size: int, n: int) -> torch.Tensor:
    return torch.full((batch_size,), n, dtype=torch.long)


def slice_logits(prior, bottom_codes, top_codes, first) -> torch.Tensor:
    """Teacher-forced logits of every future slice: (B, K, Tb - first, Hb, Wb), one prior pass per slice."""
    batch_size = bottom_codes.shape[0]
    slices = range(first, bottom_codes.shape[1])
    return torch.stack([prior(bottom_codes, top_codes, slice_index(batch_size, n)) for n in slices], 2)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=4, help="videos sampled at once")
    parser.add_argument("--prefix", type=int, default=8, help="positions of the plain sampler actually timed")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadiest on a shared 2-core CPU)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = [bench_top(args.batch_size, args.prefix, args.seed), bench_bottom(args.batch_size, args.prefix, args.seed)]
    print(f"batch {args.batch_size}, {args.threads} thread(s), device cpu; naive = first {args.prefix} positions "
          "timed, scaled by the position count")
    print(f"{'prior':<7}{'positions':>10}{'forward s':>11}{'naive s':>12}{'cached s':>10}{'naive/cached':>14}"
          f"{'cached/forward':>16}{'identical':>11}{'max |Δlogit|':>14}")
    for r in rows:
        print(f"{r.prior:<7}{r.positions:>10}{r.forward_s:>11.3f}{r.naive_s:>12.1f}{r.cached_s:>10.2f}"
              f"{r.naive_s / r.cached_s:>14.1f}{r.cached_s / r.forward_s:>16.2f}{str(r.identical):>11}"
              f"{r.max_logit_error:>14.2e}")
    top, bottom = rows
    print(json.dumps({
        "top_ratio": round(top.naive_s / top.cached_s, 2),
        "bottom_ratio": round(bottom.naive_s / bottom.cached_s, 2),
        "top_vs_forward": round(top.cached_s / top.forward_s, 2),
        "bottom_vs_forward": round(bottom.cached_s / bottom.forward_s, 2),
        "identical": top.identical and bottom.identical,
        "top_seconds": {"forward": top.forward_s, "naive_scaled": top.naive_s, "cached": top.cached_s},
        "bottom_seconds": {"forward": bottom.forward_s, "naive_scaled": bottom.naive_s, "cached": bottom.cached_s},
        "batch_size": args.batch_size, "naive_prefix_positions": args.prefix, "threads": args.threads,
    }))


if __name__ == "__main__":
    main()
