"""Prior-training input throughput: the code cache vs encoding clips on the fly vs codes already in memory.

    python benchmarks/bench_cache.py [--target top|bottom] [--batch-size 32] [--num-batches 200]   (make bench-cache)

At demo sizes (64 px, 16 frames, the demo VQ-VAE of experiments/demo/vqvae.yaml; random weights unless --vqvae
is given: speed does not depend on them), the bundled clips are precomputed once into a temporary cache, then
the same prior batches (layout of `CodesDataModule`) are produced four ways:
  cache        CodesDataModule's train loader (memory-mapped uint16 shards, shuffled across shards)
  in_memory    the same loader over the same codes held in RAM (`in_memory=True`): a tensor dataset
  tensors      plain tensor indexing per batch, no DataLoader at all (a ceiling no loader reaches)
  on_the_fly   KineticsDataModule's train loader (decode + resize + crop) then vqvae.encode + encode_given_frames
The bundled clips make one small shard, so cache and in_memory are timed again on a synthetic cache of
--scaled-clips random codes of the same shapes in several shards (shuffling across shards, a page-cached
cache bigger than the CPU caches). Prints a table, then one JSON object as the last stdout line.
Goal: cache within 10% of in_memory, and many times faster than on_the_fly.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vqvideo.cache.dataset import TARGET_ARRAYS, CodesDataModule, splice_codes
from vqvideo.cache.manifest import CODE_ARRAYS, read_manifest
from vqvideo.cache.shards import open_shard
from vqvideo.commands import precompute
from vqvideo.lit.configs import read_yaml

DEMO_VQVAE_CONFIG = Path(__file__).resolve().parents[1] / "experiments" / "demo" / "vqvae.yaml"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=("top", "bottom"), default="top", help="which prior's batches")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-batches", type=int, default=2000, help="batches timed from the cache and memory")
    parser.add_argument("--num-batches-on-the-fly", type=int, default=3, help="batches timed encoding on the fly")
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader workers of both loaders")
    parser.add_argument("--scaled-clips", type=int, default=8192, help="clips of the synthetic multi-shard cache")
    parser.add_argument("--vqvae", default=None, help="a VQ-VAE checkpoint (default: demo config, random weights)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: on a shared CPU, spinning OpenMP threads swamp sub-ms batches)")
    return parser.parse_args(argv)


def demo_checkpoint(workdir: Path) -> Path:
    """The demo VQ-VAE config with random weights, saved as a real checkpoint."""
    import pytorch_lightning as pl

    from vqvideo.lit.vqvae_module import VQVAEModule

    init_args = read_yaml(DEMO_VQVAE_CONFIG)["model"]["init_args"]
    module = VQVAEModule(**init_args, clip_shape=demo_clip_shape())
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(workdir / "vqvae.ckpt")
    return workdir / "vqvae.ckpt"


def demo_clip_shape() -> tuple[int, int, int]:
    """(frames, height, width) of the demo VQ-VAE's training clips, from its YAML's data section."""
    data = read_yaml(DEMO_VQVAE_CONFIG)["data"]["init_args"]
    return data["num_frames"], data["resolution"], data["resolution"]


def batch_rates(sources: dict, num_batches: int, rounds: int = 10) -> dict[str, float]:
    """batches/s of each endless batch iterator: the sources take turns for `rounds` rounds of
    num_batches / rounds batches each (after one warm-up batch), and each keeps its best round, so a busy
    shared CPU slows all sources alike instead of whichever ran during a burst."""
    per_round = max(1, num_batches // rounds)
    best = {name: 0.0 for name in sources}
    for name, batches in sources.items():
        next(batches)
    for _ in range(rounds if per_round < num_batches else 1):
        for name, batches in sources.items():
            start = time.perf_counter()
            for _ in range(per_round):
                next(batches)
            best[name] = max(best[name], per_round / (time.perf_counter() - start))
    return best


def cache_batches(cache_dir: Path, args, in_memory: bool = False):
    dm = CodesDataModule(str(cache_dir), args.target, args.batch_size, args.num_workers, in_memory=in_memory)
    dm.setup("fit")
    while True:
        yield from dm.train_dataloader()


def prior_batch(codes: dict[str, torch.Tensor], target: str, num_given_top: int, slice_range: tuple[int, int]):
    """Raw codes (B, ...) int64 -> the batch CodesDataModule gives for `target`."""
    if target == "top":
        return {"given_top": codes["given_top"], "given_bottom": codes["given_bottom"],
                "target_top": codes["top"][:, num_given_top:]}
    return {"top_codes": splice_codes(codes["given_top"], codes["top"]),
            "bottom_codes": splice_codes(codes["given_bottom"], codes["bottom"]),
            "slice_index": torch.randint(*slice_range, (codes["top"].shape[0],))}


def tensor_batches(cache_dir: Path, args):
    manifest = read_manifest(cache_dir)
    spec, shards = manifest.code_spec, [open_shard(cache_dir, s, mmap=False) for s in manifest.shards]
    rows = [manifest.locations[p] for p in manifest.split_positions("train")]
    codes = {name: torch.from_numpy(np.stack([shards[s][name][r] for s, r in rows]).astype(np.int64))
             for name in TARGET_ARRAYS[args.target]}
    slice_range = (spec.given_bottom_shape[0], spec.bottom_shape[0])
    while True:
        for batch_rows in torch.randperm(len(rows)).split(args.batch_size):
            yield prior_batch({n: v[batch_rows] for n, v in codes.items()}, args.target, spec.given_top_shape[0],
                              slice_range)


def on_the_fly_batches(checkpoint: Path, args):
    from vqvideo.data.datamodule import KineticsDataModule
    from vqvideo.lit.vqvae_module import load_vqvae
    from vqvideo.models.vqvae import NUM_GIVEN_FRAMES, encode_given_frames

    vqvae = load_vqvae(checkpoint).to(args.device)
    num_frames, resolution, _ = clip_shape = demo_clip_shape()
    dm = KineticsDataModule(None, num_frames=num_frames, resolution=resolution, batch_size=args.batch_size,
                            num_workers=args.num_workers, random_flip=True, progress=False)
    dm.setup("fit")
    top_shape, bottom_shape = vqvae.latent_shapes(*clip_shape)
    while True:
        for batch in dm.train_dataloader():
            with torch.inference_mode():
                video = batch["video"].to(args.device)
                full, given = vqvae.encode(video), encode_given_frames(vqvae, video, NUM_GIVEN_FRAMES)
            codes = {"top": full.top, "bottom": full.bottom, "given_top": given.top, "given_bottom": given.bottom}
            yield prior_batch({n: v.cpu() for n, v in codes.items()}, args.target, given.top.shape[1],
                              (given.bottom.shape[1], bottom_shape[0]))


def synthetic_cache(real_cache: Path, cache_dir: Path, num_clips: int, rows_per_shard: int = 2048) -> None:
    """`num_clips` train clips of random codes with the real cache's shapes and codebooks, in several shards."""
    from vqvideo.cache.manifest import ClipRecord
    from vqvideo.cache.shards import RankShardWriter
    from vqvideo.cache.writer import merge_manifest

    manifest, rng = read_manifest(real_cache), np.random.default_rng(0)
    spec = manifest.code_spec
    writer = RankShardWriter(cache_dir, 0, rows_per_shard)
    for first in range(0, num_clips, rows_per_shard):
        ids = np.arange(first, min(first + rows_per_shard, num_clips))
        rows = {name: rng.integers(0, spec.num_top_codes if "top" in name else spec.num_bottom_codes,
                                   (len(ids), *spec.shape_of(name)), dtype=np.uint16) for name in CODE_ARRAYS}
        writer.add(rows | {"clip_id": ids})
    writer.flush()
    clips = [ClipRecord(i, "synthetic", "synthetic", 0, 16, 1, False, None, "train") for i in range(num_clips)]
    merge_manifest(cache_dir, manifest.identity, spec, clips)


def build_cache(checkpoint: Path, cache_dir: Path, args) -> tuple[int, float]:
    """Precompute the bundled clips like `make precompute` does; (number of clips, seconds)."""
    start = time.perf_counter()
    argv = ["--config", str(DEMO_VQVAE_CONFIG.parent / "precompute.yaml"), "--vqvae", str(checkpoint),
            "--out", str(cache_dir), "--data.num_workers", str(args.num_workers),
            "--data.index_cache_dir", str(cache_dir.parent / "index"), "--trainer.enable_progress_bar", "false",
            "--trainer.accelerator", "gpu" if args.device.startswith("cuda") else "cpu"]
    if precompute.main(argv) != 0:
        raise SystemExit("precompute failed")
    return len(read_manifest(cache_dir).clips), time.perf_counter() - start


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench_cache_") as tmp:
        workdir = Path(tmp)
        checkpoint = Path(args.vqvae) if args.vqvae else demo_checkpoint(workdir)
        num_clips, precompute_s = build_cache(checkpoint, workdir / "codes", args)
        real = workdir / "codes"
        rates = batch_rates({"cache": cache_batches(real, args), "in_memory": cache_batches(real, args, True),
                             "tensors": tensor_batches(real, args)}, args.num_batches)
        rates |= batch_rates({"on_the_fly": on_the_fly_batches(checkpoint, args)}, args.num_batches_on_the_fly)
        synthetic_cache(real, workdir / "scaled", args.scaled_clips)
        scaled = batch_rates({"cache": cache_batches(workdir / "scaled", args),
                              "in_memory": cache_batches(workdir / "scaled", args, True)}, args.num_batches)
    print_table(args, num_clips, rates, scaled)
    result = {
        "benchmark": "cache", "target": args.target, "batch_size": args.batch_size, "device": args.device,
        "threads": torch.get_num_threads(), "num_workers": args.num_workers, "num_clips": num_clips,
        "precompute_s": round(precompute_s, 2),
        **{f"{name}_batches_per_s": round(rate, 2) for name, rate in rates.items()},
        "cache_vs_in_memory": round(rates["cache"] / rates["in_memory"], 3),
        "cache_speedup_vs_on_the_fly": round(rates["cache"] / rates["on_the_fly"], 1),
        "scaled_clips": args.scaled_clips,
        **{f"scaled_{name}_batches_per_s": round(rate, 2) for name, rate in scaled.items()},
        "scaled_cache_vs_in_memory": round(scaled["cache"] / scaled["in_memory"], 3),
    }
    print(json.dumps(result))


def print_table(args, num_clips: int, rates: dict[str, float], scaled: dict[str, float]) -> None:
    print(f"\nprior input throughput, target={args.target}, batch {args.batch_size}, demo sizes (64 px, 16 frames), "
          f"device {args.device}, {torch.get_num_threads()} threads, {args.num_workers} workers")
    print(f"{'source':<34}{'batches/s':>11}{'clips/s':>11}{'vs in_memory':>14}")
    rows = [(f"{name} ({num_clips} clips)", rate, rates["in_memory"]) for name, rate in rates.items()]
    rows += [(f"{name} ({args.scaled_clips} synthetic)", rate, scaled["in_memory"]) for name, rate in scaled.items()]
    for label, rate, reference in rows:
        print(f"{label:<34}{rate:>11.2f}{rate * args.batch_size:>11.0f}{rate / reference:>14.3f}")


if __name__ == "__main__":
    main()
