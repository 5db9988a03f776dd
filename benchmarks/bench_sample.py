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
Exactness, checked in the same run: the cached path's per-position logits equal the teacher-forced pass to 1e-4
(max |Δlogit|); re-picking every code from the teacher-forced logits with the same uniforms gives the cached codes
(what the plain sampler would return, the network being causal); the naive prefix codes equal the cached codes
there. The two paths compute logits with different kernels, so a uniform within float error of a CDF boundary can
pick the neighbouring code: every code that differs is listed (`differences`) with whether the logits' float
difference explains it — its uniform lies within the bound a max |Δlogit| shift puts on that CDF boundary
(`boundary_tolerance`). `identical` is True when the logits agree to 1e-4 and no difference is unexplained.
Weights are seeded (--seed), so two runs are the same run. All of it without TF32 (`ieee_float32`, as the samplers
run). Prints a table, then one JSON object as the last stdout line. `bench_top`/`bench_bottom` also serve benchmarks/gpu_check.py (any
config folder, any device; prefix None runs the plain sampler over the whole volume).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import math

import torch

from vqvideo.lit.configs import build_module
from vqvideo.sampling import NaiveSampler, get_sampler
from vqvideo.sampling.base import SamplingOptions, filter_logits, ieee_float32, pick_codes, sampling_uniforms
from vqvideo.sampling.cached import teacher_forced_logits

BENCH = Path(__file__).resolve().parents[1] / "experiments" / "bench"
OPTIONS = SamplingOptions()
SOFTMAX_ROUNDING = 2.0 ** -21  # 8 float32 ulps: what the float32 softmax may add to a CDF boundary on its own


@dataclass
class Row:
    prior: str
    positions: int
    forward_s: float
    naive_s: float  # scaled to every position when only a prefix was timed
    cached_s: float
    identical: bool
    max_logit_error: float
    differences: list[dict]  # codes that differ between the paths (see `difference`)


def boundary_tolerance(max_logit_error: float) -> float:
    """How far a CDF boundary can move when every logit moves by at most max_logit_error: each probability changes
    by a factor within exp(±2 ε), so a boundary c by at most c (exp(2 ε) - 1) <= exp(2 ε) - 1; plus float32 softmax
    rounding."""
    return math.expm1(2 * max_logit_error) + SOFTMAX_ROUNDING


def difference(where: str, position: tuple, codes: tuple[int, int], logits: torch.Tensor, uniform: float,
               tolerance: float) -> dict:
    """One differing code: where (which comparison), position, the two codes, its uniform, the distance of the
    uniform to the farthest CDF boundary between the two codes (from `logits`, (K,), as `pick_codes` builds the
    CDF), and whether that is within `tolerance` (explained by the logits' float difference)."""
    cdf = filter_logits(logits[None].float(), OPTIONS).softmax(-1).double().cumsum(-1)[0]
    boundaries = cdf[min(codes):max(codes)] / cdf[-1]  # the boundaries a uniform crosses between the two codes
    distance = (boundaries - uniform).abs().max().item()
    return {"where": where, "position": list(position), "codes": list(codes), "uniform": uniform,
            "boundary_distance": distance, "tolerance": tolerance, "explained": distance <= tolerance}


def differences_of(where: str, expected: torch.Tensor, found: torch.Tensor, logits: torch.Tensor,
                   uniforms: torch.Tensor, tolerance: float, first_only: bool = False) -> list[dict]:
    """expected, found, uniforms (B, *volume); logits (B, K, *volume) → a `difference` per differing position (with
    first_only, only each video's first in generation order: its later codes are conditioned on that one)."""
    positions = (expected != found).nonzero().tolist()  # row-major: generation order within each video
    if first_only:
        firsts: dict[int, list[int]] = {}
        for index in positions:
            firsts.setdefault(index[0], index)
        positions = list(firsts.values())
    return [difference(where, tuple(index), (int(expected[tuple(index)]), int(found[tuple(index)])),
                       logits[(index[0], slice(None), *index[1:])], float(uniforms[tuple(index)]), tolerance)
            for index in positions]


def exact(error: float, differences: list[dict]) -> bool:
    """The cached sampler is exact: logits agree to 1e-4 and every differing code is explained by their float
    difference."""
    return error < 1e-4 and all(item["explained"] for item in differences)


def synchronize(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timed(function, device="cpu"):
    """(seconds, result) of function(); on CUDA the queued kernels are waited for before and after."""
    synchronize(device)
    start = time.perf_counter()
    result = function()
    synchronize(device)
    return time.perf_counter() - start, result


def build(config_path: Path, device, seed: int):
    """The config's prior (eval mode, no gradients) on `device`, its untrained weights drawn from `seed`, and its
    latent facts (bench: the paper's shapes, from experiments/bench/vqvae.yaml)."""
    torch.manual_seed(seed)
    module = build_module(config_path, device=device)
    return module.code_spec, module.prior.eval().requires_grad_(False)


def random_codes(shape, num_codes, generator, device):
    """int64 codes drawn on a CPU generator, then moved to `device`."""
    return torch.randint(0, num_codes, shape, generator=generator).to(device)


def repicked(logits_per_position: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """logits (B, K, *volume), uniforms (B, *volume) → codes (B, *volume) picked as every sampler does."""
    flat = logits_per_position.movedim(1, -1).reshape(-1, logits_per_position.shape[1])
    return pick_codes(flat, uniforms.reshape(-1), OPTIONS).view(uniforms.shape)


def time_samplers(sample, prefix: int | None, device):
    """(naive seconds, naive codes, cached seconds, cached codes); sample(sampler) → codes. prefix: positions of
    the plain sampler run (None: all)."""
    sample(NaiveSampler(max_positions=1))  # warm-up (allocator, kernels)
    naive_s, naive_codes = timed(lambda: sample(NaiveSampler(max_positions=prefix)), device)
    cached_s, codes = timed(lambda: sample(get_sampler("cached")), device)
    return naive_s, naive_codes, cached_s, codes


def bench_top(batch_size: int, prefix: int | None, seed: int, config_dir: Path = BENCH, device="cpu") -> Row:
    """The top prior of config_dir/top_prior.yaml on `device`; prefix: positions the plain sampler runs (None: all)."""
    spec, prior = build(config_dir / "top_prior.yaml", device, seed)
    generator = torch.Generator().manual_seed(seed)
    given_top = random_codes((batch_size, *spec.given_top_shape), spec.num_top_codes, generator, device)
    given_bottom = random_codes((batch_size, *spec.given_bottom_shape), spec.num_bottom_codes, generator, device)
    num_slices, height, width = spec.num_future_top_slices, *spec.top_shape[1:]
    positions = num_slices * height * width
    prefix = min(prefix or positions, positions)

    def sample(sampler):
        return sampler.sample_top(prior, given_top, given_bottom, num_slices, OPTIONS,
                                  torch.Generator().manual_seed(seed))

    naive_s, naive_codes, cached_s, codes = time_samplers(sample, prefix, device)
    with torch.no_grad(), ieee_float32():
        forward_s, logits = timed(lambda: prior(codes, given_top, given_bottom), device)
        cond = prior.condition(given_top, given_bottom, num_slices)
        cached_logits = teacher_forced_logits(prior.pixelcnn, codes, cond)
    uniforms = sampling_uniforms(batch_size, num_slices, height, width, torch.Generator().manual_seed(seed), device)
    error = (cached_logits - logits).abs().max().item()
    tolerance = boundary_tolerance(error)
    in_prefix = torch.zeros(positions, dtype=torch.bool, device=codes.device)
    in_prefix[:prefix] = True
    in_prefix = in_prefix.view(codes.shape[1:]).expand_as(codes)
    found = differences_of("repicked from the teacher-forced logits", repicked(logits, uniforms), codes, logits,
                           uniforms, tolerance)
    found += differences_of("naive sampler prefix", torch.where(in_prefix, naive_codes, codes), codes, logits,
                            uniforms, tolerance, first_only=True)
    return Row("top", positions, forward_s, naive_s / prefix * positions, cached_s, exact(error, found), error, found)


def bench_bottom(batch_size: int, prefix: int | None, seed: int, config_dir: Path = BENCH, device="cpu") -> Row:
    """The bottom prior of config_dir/bottom_prior.yaml on `device`; prefix: positions the plain sampler runs in
    each slice (None: all). Only the first slice's prefix can be compared: later slices are conditioned on it."""
    spec, prior = build(config_dir / "bottom_prior.yaml", device, seed)
    generator = torch.Generator().manual_seed(seed)
    top_codes = random_codes((batch_size, *spec.top_shape), spec.num_top_codes, generator, device)
    given_bottom = random_codes((batch_size, *spec.given_bottom_shape), spec.num_bottom_codes, generator, device)
    first, num_slices = spec.given_bottom_shape[0], spec.num_future_bottom_slices
    height, width = spec.bottom_shape[1:]
    positions, per_slice = num_slices * height * width, min(prefix or height * width, height * width)

    def sample(sampler):
        return sampler.sample_bottom(prior, top_codes, given_bottom, num_slices, OPTIONS,
                                     torch.Generator().manual_seed(seed))

    naive_s, naive_codes, cached_s, codes = time_samplers(sample, per_slice, device)
    future = codes[:, first:]  # (B, 6, Hb, Wb)
    with torch.no_grad(), ieee_float32():
        forward_s, logits = timed(lambda: slice_logits(prior, codes, top_codes, first), device)
        cached_logits = cached_slice_logits(prior, codes, top_codes, first)
    uniforms = sampling_uniforms(batch_size, num_slices, height, width, torch.Generator().manual_seed(seed), device)
    error = (cached_logits - logits).abs().max().item()
    tolerance = boundary_tolerance(error)
    compared = num_slices if per_slice == height * width else 1  # all slices, or the first one's prefix
    in_prefix = torch.zeros(num_slices, height * width, dtype=torch.bool, device=future.device)
    in_prefix[:compared, :per_slice] = True
    in_prefix = in_prefix.view(future.shape[1:]).expand_as(future)
    found = differences_of("repicked from the teacher-forced logits", repicked(logits, uniforms), future, logits,
                           uniforms, tolerance)
    found += differences_of("naive sampler prefix", torch.where(in_prefix, naive_codes[:, first:], future), future,
                            logits, uniforms, tolerance, first_only=True)
    naive_scaled = naive_s / (per_slice * num_slices) * positions  # the plain run did per_slice in every slice
    return Row("bottom", positions, forward_s, naive_scaled, cached_s, exact(error, found), error, found)


def slice_index(batch_size: int, n: int, device) -> torch.Tensor:
    return torch.full((batch_size,), n, dtype=torch.long, device=device)


def slice_logits(prior, bottom_codes, top_codes, first) -> torch.Tensor:
    """Teacher-forced logits of every future slice: (B, K, Tb - first, Hb, Wb), one prior pass per slice."""
    batch_size, device = bottom_codes.shape[0], bottom_codes.device
    slices = range(first, bottom_codes.shape[1])
    return torch.stack([prior(bottom_codes, top_codes, slice_index(batch_size, n, device)) for n in slices], 2)


def cached_slice_logits(prior, bottom_codes, top_codes, first) -> torch.Tensor:
    """The cached path's logits of every future slice, teacher-forced: (B, K, Tb - first, Hb, Wb)."""
    batch_size, device = bottom_codes.shape[0], bottom_codes.device
    logits = []
    for n in range(first, bottom_codes.shape[1]):
        cond = prior.condition(top_codes, bottom_codes, slice_index(batch_size, n, device))[:, :, None]
        logits.append(teacher_forced_logits(prior.pixelcnn, bottom_codes[:, n : n + 1], cond)[:, :, 0])
    return torch.stack(logits, 2)


def ratios(row: Row) -> dict:
    """How much faster the cached sampler is than the plain one, and how many forward passes it costs."""
    return {"naive_over_cached": round(row.naive_s / row.cached_s, 2),
            "cached_over_forward": round(row.cached_s / row.forward_s, 2)}


def print_table(rows: list[Row], header: str) -> None:
    print(header)
    print(f"{'prior':<7}{'positions':>10}{'forward s':>11}{'naive s':>12}{'cached s':>10}{'naive/cached':>14}"
          f"{'cached/forward':>16}{'identical':>11}{'max |Δlogit|':>14}{'differ':>8}{'unexplained':>13}")
    for r in rows:
        unexplained = sum(not item["explained"] for item in r.differences)
        print(f"{r.prior:<7}{r.positions:>10}{r.forward_s:>11.3f}{r.naive_s:>12.1f}{r.cached_s:>10.2f}"
              f"{r.naive_s / r.cached_s:>14.1f}{r.cached_s / r.forward_s:>16.2f}{str(r.identical):>11}"
              f"{r.max_logit_error:>14.2e}{len(r.differences):>8}{unexplained:>13}")
    for r in rows:
        for item in r.differences:
            print(f"  {r.prior} {item['where']} at {item['position']}: codes {item['codes']}, uniform "
                  f"{item['uniform']:.9f} is {item['boundary_distance']:.2e} from a CDF boundary (tolerance "
                  f"{item['tolerance']:.2e}): {'explained by' if item['explained'] else 'NOT explained by'} the "
                  "logits' float difference")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=4, help="videos sampled at once")
    parser.add_argument("--prefix", type=int, default=8,
                        help="positions of the plain sampler actually timed (bottom prior: in each slice)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadiest on a shared 2-core CPU)")
    parser.add_argument("--seed", type=int, default=0, help="weights, given codes and uniforms")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    top, bottom = (bench(args.batch_size, args.prefix, args.seed, device=args.device)
                   for bench in (bench_top, bench_bottom))
    print_table([top, bottom], f"batch {args.batch_size}, {args.threads} thread(s), device {args.device}; naive = "
                f"first {args.prefix} positions (per bottom slice) timed, scaled by the position count")
    print(json.dumps({
        "top_ratio": ratios(top)["naive_over_cached"],
        "bottom_ratio": ratios(bottom)["naive_over_cached"],
        "top_vs_forward": ratios(top)["cached_over_forward"],
        "bottom_vs_forward": ratios(bottom)["cached_over_forward"],
        "identical": top.identical and bottom.identical,
        "max_logit_error": {"top": top.max_logit_error, "bottom": bottom.max_logit_error},
        "differences": {"top": top.differences, "bottom": bottom.differences},
        "unexplained_differences": sum(not item["explained"] for r in (top, bottom) for item in r.differences),
        "top_seconds": {"forward": top.forward_s, "naive_scaled": top.naive_s, "cached": top.cached_s},
        "bottom_seconds": {"forward": bottom.forward_s, "naive_scaled": bottom.naive_s, "cached": bottom.cached_s},
        "batch_size": args.batch_size, "naive_prefix_positions": args.prefix, "threads": args.threads,
        "device": args.device,
    }))


if __name__ == "__main__":
    main()
