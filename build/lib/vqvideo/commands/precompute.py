"""`vqvideo precompute`: encode a dataset once with the frozen VQ-VAE into the sharded code cache.

    vqvideo precompute --config experiments/demo/precompute.yaml [--vqvae CKPT] [--out DIR] [--data.root ROOT]
    vqvideo precompute ... --trainer.devices 8          # one shard set per rank (DDP)
    vqvideo precompute --verify DIR                     # re-check every shard checksum

Runs `vqvideo.callbacks.precompute.build_code_cache`: Lightning's prediction loop (`CodeEncoderModule` +
`CodeCacheWriter`). Killed at any point, the same
command finishes the cache with exactly the content of an uninterrupted run. A cache built from another
VQ-VAE checkpoint/config, dataset or clip selection is refused (`--overwrite` rebuilds it).
"""

from __future__ import annotations

import sys
from pathlib import Path

from jsonargparse import ActionConfigFile, ActionYesNo, ArgumentParser, Namespace

from vqvideo.cache.manifest import MANIFEST_NAME, CacheError, read_manifest
from vqvideo.cache.shards import read_progress, verify_shards
from vqvideo.callbacks.precompute import DATA_FROM_CHECKPOINT, CacheRequest, build_code_cache
from vqvideo.data.datamodule import KineticsDataModule
from vqvideo.files import DiskFullError
from vqvideo.lit.checkpoints import CheckpointError
from vqvideo.lit.trainer_options import TrainerOptions
from vqvideo.models.vqvae import NUM_GIVEN_FRAMES


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="vqvideo precompute", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", action=ActionConfigFile, help="YAML with any of these options")
    parser.add_argument("--vqvae", type=str, default="outputs/demo/vqvae.ckpt", help="VQ-VAE checkpoint")
    parser.add_argument("--out", type=str, default="outputs/demo/codes", help="cache directory")
    # --data.*: KineticsDataModule's options (root, frame_stride, max_clips_per_video, ...); clips have the VQ-VAE
    # checkpoint's clip shape (frames, resolution). data.random_flip: true also encodes every train clip mirrored.
    parser.add_class_arguments(KineticsDataModule, "data", skip=set(DATA_FROM_CHECKPOINT))
    parser.add_argument("--splits", type=list[str], default=["train", "val"], help="splits to encode")
    parser.add_argument("--num_given_frames", type=int, default=NUM_GIVEN_FRAMES,
                        help="frames given at prediction (paper: 4); the manifest records it for every later stage")
    parser.add_argument("--rows_per_shard", type=int, default=2048,
                        help="clips per shard; 2048 ≈ 180 MB at 256 px (keep a multiple of data.batch_size)")
    parser.add_class_arguments(TrainerOptions, "trainer")
    parser.set_defaults({"trainer.deterministic": True})  # a restart re-encodes to the very same codes
    parser.add_argument("--overwrite", action=ActionYesNo, default=False, help="delete an existing cache first")
    parser.add_argument("--verify", type=str | None, default=None, help="re-check the checksums of cache DIR")
    return parser


def verify_cache(cache_dir: str) -> int:
    """Re-hash every shard of a complete (or, without a manifest, partial) cache; 0 = intact, 1 = not."""
    root = Path(cache_dir)
    if not root.is_dir():
        print(f"{root} does not exist: pass the --out directory of a `vqvideo precompute` run", file=sys.stderr)
        return 1
    shards = read_manifest(root).shards if (root / MANIFEST_NAME).is_file() else read_progress(root)
    if not shards:
        print(f"{root}: no shards to verify (not a code cache, or nothing written yet)", file=sys.stderr)
        return 1
    problems = verify_shards(root, shards)
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(f"{root}: all {len(shards)} shards match their sha256")
    return 1 if problems else 0


def cache_request(cfg: Namespace) -> CacheRequest:
    return CacheRequest(cfg.vqvae, cfg.out, vars(cfg.data), list(cfg.splits), cfg.num_given_frames,
                        cfg.rows_per_shard, cfg.overwrite)


def main(argv: list[str] | None = None) -> int:
    cfg = build_parser().parse_args(argv)
    try:
        if cfg.verify:
            return verify_cache(cfg.verify)
        build_code_cache(cache_request(cfg), cfg.trainer)
    except (CacheError, CheckpointError, DiskFullError, ValueError) as err:  # messages name the file and the fix
        print(f"vqvideo precompute: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
