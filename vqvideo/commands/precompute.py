"""`vqvideo precompute`: encode a dataset once with the frozen VQ-VAE into the sharded code cache.

    vqvideo precompute --config experiments/demo/precompute.yaml [--vqvae CKPT] [--out DIR] [--data.root ROOT]
    vqvideo precompute ... --trainer.devices 8          # one shard set per rank (DDP)
    vqvideo precompute --verify DIR                     # re-check every shard checksum

Runs Lightning's prediction loop (`CodeEncoderModule` + `CodeCacheWriter`). Killed at any point, the same
command finishes the cache with exactly the content of an uninterrupted run. A cache built from another
VQ-VAE checkpoint/config, dataset or clip selection is refused (`--overwrite` rebuilds it).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from jsonargparse import ActionConfigFile, ActionYesNo, ArgumentParser

from vqvideo.cache.manifest import (
    MANIFEST_BYTES_PER_CLIP, MANIFEST_NAME, CacheError, CacheIdentity, code_spec_of, read_manifest,
)
from vqvideo.cache.plan import plan_clips, plan_sha256
from vqvideo.cache.shards import done_clip_ids, read_progress, verify_shards
from vqvideo.cache.writer import check_identity, existing_identity
from vqvideo.callbacks.code_cache import CodeCacheWriter
from vqvideo.data.datamodule import KineticsDataModule
from vqvideo.data.fixed_clips import FixedClipsDataModule
from vqvideo.files import DiskFullError, explain_disk_full, file_sha256
from vqvideo.lit.checkpoints import CheckpointError, read_checkpoint
from vqvideo.lit.code_encoder import CodeEncoderModule
from vqvideo.lit.trainer_options import TrainerOptions, run_prediction
from vqvideo.lit.vqvae_module import load_vqvae
from vqvideo.models.vqvae import NUM_GIVEN_FRAMES

# KineticsDataModule options that change which pixels are encoded (recorded in the cache identity); the others
# (batch_size, num_workers, decode_device, ...) only change how fast.
SELECTION_OPTIONS = ("root", "source", "frame_stride", "target_fps", "val_fraction",
                     "max_clips_per_video", "clip_step", "random_flip")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="vqvideo precompute", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", action=ActionConfigFile, help="YAML with any of these options")
    parser.add_argument("--vqvae", type=str, default="outputs/demo/vqvae.ckpt", help="VQ-VAE checkpoint")
    parser.add_argument("--out", type=str, default="outputs/demo/codes", help="cache directory")
    # --data.*: KineticsDataModule's options (root, frame_stride, max_clips_per_video, ...); clips have the VQ-VAE
    # checkpoint's clip shape (frames, resolution). data.random_flip: true also encodes every train clip mirrored.
    parser.add_class_arguments(KineticsDataModule, "data", skip={"num_frames", "resolution", "progress", "pin_memory"})
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


def vqvae_identity_parts(checkpoint_path: str) -> tuple[str, dict]:
    """(sha256 of the checkpoint file, its hyper_parameters as plain JSON values)."""
    hparams = read_checkpoint(checkpoint_path).get("hyper_parameters", {})
    return file_sha256(checkpoint_path), json.loads(json.dumps(hparams, sort_keys=True, default=str))


def vqvae_clip_shape(checkpoint_path: str, hparams: dict) -> tuple[int, int, int]:
    """(frames, height, width) of the clips the VQ-VAE was trained on (its recorded clip_shape): the cached clips."""
    clip_shape = hparams.get("clip_shape")
    if not clip_shape:
        raise CacheError(f"{checkpoint_path} records no clip_shape: pass a VQ-VAE checkpoint written by `vqvideo fit`")
    return tuple(int(size) for size in clip_shape)


def plan_from_config(cfg, clip_shape: tuple[int, int, int]):
    """(datamodule after setup, planned clips, selection dict recorded in the identity)."""
    num_frames, resolution, _ = clip_shape
    datamodule = KineticsDataModule(**vars(cfg.data), num_frames=num_frames, resolution=resolution, progress=False)
    datamodule.setup()
    clips = plan_clips(datamodule, tuple(cfg.splits), horizontal_flips=cfg.data.random_flip)
    if not clips:
        raise CacheError(f"no clip to encode in splits {cfg.splits} of {cfg.data.root or 'the embedded clips'}: "
                         "check --data.root and --splits")
    selection = {name: getattr(cfg.data, name) for name in SELECTION_OPTIONS}
    selection |= {"num_frames": num_frames, "resolution": resolution, "splits": list(cfg.splits),
                  "num_given_frames": cfg.num_given_frames}
    return datamodule, clips, json.loads(json.dumps(selection))


def run_precompute(cfg) -> Path:
    """Plan the clips, check the output directory, and run the prediction loop; returns the cache dir."""
    out = Path(cfg.out)
    vqvae = load_vqvae(cfg.vqvae)
    vqvae_sha256, vqvae_hparams = vqvae_identity_parts(cfg.vqvae)
    clip_shape = vqvae_clip_shape(cfg.vqvae, vqvae_hparams)
    code_spec = code_spec_of(vqvae, clip_shape, cfg.num_given_frames)
    datamodule, clips, selection = plan_from_config(cfg, clip_shape)
    resolution = clip_shape[1]
    identity = CacheIdentity(str(cfg.vqvae), vqvae_sha256, vqvae_hparams, datamodule.index.fingerprint,
                             selection, plan_sha256(clips))
    if not cfg.overwrite:
        check_identity(out, identity)  # every rank, before the trainer: all ranks refuse alike
        if (out / MANIFEST_NAME).is_file() and existing_identity(out).mismatch(identity) is None:
            print(f"code cache {out} is already complete ({len(clips)} clips); --overwrite rebuilds it")
            return out
    writer = CodeCacheWriter(out, identity, code_spec, clips, cfg.rows_per_shard, cfg.overwrite)
    sizes = {entry.path: (entry.height, entry.width) for entry in datamodule.index.entries}
    pending = FixedClipsDataModule(clips, resolution, cfg.data.batch_size, cfg.data.num_workers,
                                   cfg.data.decode_device, sizes, done_ids=lambda: done_clip_ids(out))
    encoder = CodeEncoderModule(vqvae, cfg.num_given_frames, cfg.data.batch_size)
    needed = len(clips) * (code_spec.bytes_per_clip + MANIFEST_BYTES_PER_CLIP)
    with explain_disk_full(out, needed, "the code cache", "run the same command again: it keeps the finished shards"):
        is_global_zero = run_prediction(cfg.trainer, str(out), writer, encoder, pending)
    if is_global_zero:
        manifest = read_manifest(out)
        if manifest.failed_clips:
            print(f"{len(manifest.failed_clips)} clips could not be read (manifest.json: failed_clips), e.g. "
                  f"{manifest.failed_clips[0]['reason']}", file=sys.stderr)
        print(f"code cache {out}: {len(manifest.clips)} clips in {len(manifest.shards)} shards "
              f"(top {code_spec.top_shape}, bottom {code_spec.bottom_shape}, given frames alone: "
              f"{code_spec.given_top_shape}, {code_spec.given_bottom_shape})")
    return out


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


def main(argv: list[str] | None = None) -> int:
    cfg = build_parser().parse_args(argv)
    try:
        if cfg.verify:
            return verify_cache(cfg.verify)
        run_precompute(cfg)
    except (CacheError, CheckpointError, DiskFullError, ValueError) as err:  # messages name the file and the fix
        print(f"vqvideo precompute: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
