"""A cache directory's life: its recorded identity (refuse another run's cache), wiping it, and merging every
rank's shards into the manifest once all have finished (`vqvideo.callbacks.code_cache.CodeCacheWriter` drives it).
"""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np

from vqvideo.cache.manifest import (
    MANIFEST_NAME, PROGRESS_DIR, RUN_NAME, SHARD_DIR, CacheError, CacheIdentity, ClipRecord, CodeSpec, Manifest,
)
from vqvideo.cache.shards import read_failures, read_progress, shard_file
from vqvideo.files import atomic_write_bytes, read_json


def existing_identity(cache_dir: Path) -> CacheIdentity | None:
    """Identity recorded by a previous run in `cache_dir` (complete or not), or None for a fresh directory."""
    for name in (MANIFEST_NAME, RUN_NAME):
        if (cache_dir / name).is_file():
            raw = read_json(cache_dir / name)
            return CacheIdentity.from_dict(raw["identity"] if name == MANIFEST_NAME else raw)
    return None


def check_identity(cache_dir: Path, identity: CacheIdentity) -> None:
    """Refuse a cache directory that holds codes of another VQ-VAE, dataset or clip selection."""
    previous = existing_identity(cache_dir)
    reason = previous.mismatch(identity) if previous is not None else None
    if reason:
        raise CacheError(
            f"refusing to use the code cache in {cache_dir}: {reason}. Pass --overwrite to rebuild it, "
            "or choose another --out"
        )


def wipe_cache(cache_dir: Path) -> None:
    """Delete the cache's own files only (the directory may hold other things the user put there)."""
    for name in (MANIFEST_NAME, RUN_NAME):
        (cache_dir / name).unlink(missing_ok=True)
    for folder in (PROGRESS_DIR, SHARD_DIR):
        shutil.rmtree(cache_dir / folder, ignore_errors=True)


def merge_manifest(cache_dir: Path, identity: CacheIdentity, code_spec: CodeSpec, clips: list[ClipRecord]) -> Manifest:
    """All ranks' complete shards → manifest.json, after checking that every planned clip is stored exactly once
    or recorded unreadable. `clips[i].clip_id` must be i (the plan)."""
    shards = read_progress(cache_dir)
    locations: list[tuple[int, int] | None] = [None] * len(clips)
    failed = {int(record["clip_id"]): record["reason"] for record in read_failures(cache_dir)}
    for shard_index, shard in enumerate(shards):
        for row, clip_id in enumerate(np.load(shard_file(cache_dir, shard, "clip_id")).tolist()):
            if not 0 <= clip_id < len(clips) or locations[clip_id] is not None or clip_id in failed:
                raise CacheError(f"{cache_dir}: clip {clip_id} of shard {shard.name} is unplanned or stored twice; "
                                 "rebuild with --overwrite")
            locations[clip_id] = (shard_index, row)
    missing = [i for i, location in enumerate(locations) if location is None and i not in failed]
    if missing:
        raise CacheError(f"{cache_dir}: {len(missing)} planned clips have no codes (first: {missing[:5]}); "
                         "run the same command again to finish the cache")
    stored = [i for i, location in enumerate(locations) if location is not None]
    failed_clips = [asdict(clips[i]) | {"reason": reason} for i, reason in sorted(failed.items())]
    manifest = Manifest(identity=identity, code_spec=code_spec, clips=[clips[i] for i in stored], shards=shards,
                        locations=[locations[i] for i in stored], failed_clips=failed_clips)
    atomic_write_bytes(cache_dir / MANIFEST_NAME, manifest.to_json_bytes())
    return manifest
