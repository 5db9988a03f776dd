"""`CodeCacheWriter`: the prediction-writer callback that turns predicted codes into shards and a manifest.

Lifecycle on every rank (all hooks run outside `predict_step`):
  setup     rank 0 checks/records the run identity, wipes the cache with `overwrite`, and cleans up what a
            killed run left (temp files, unrecorded shard files); a barrier; then each rank opens its writer.
  write_on_batch_end   codes of a batch → uint16 rows; a shard is written each `rows_per_shard` rows.
  teardown  flush the rank's last shard; barrier; rank 0 checks that the shards hold every planned clip
            exactly once and writes manifest.json; barrier. (Teardown runs even when a rank got no batch.)
"""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BasePredictionWriter

from vqvideo.files import atomic_write_bytes, atomic_write_json, read_json
from vqvideo.cache.manifest import (
    CODE_ARRAYS, MANIFEST_NAME, PROGRESS_DIR, RUN_NAME, SHARD_DIR, CacheError, CacheIdentity, ClipRecord,
    CodeSpec, Manifest,
)
from vqvideo.cache.shards import RankShardWriter, codes_to_uint16, prepare_for_resume, read_failures, read_progress
from vqvideo.cache.shards import shard_file


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


class CodeCacheWriter(BasePredictionWriter):
    """Writes `CodeEncoderModule` predictions into the shard set of each rank, then merges the manifest."""

    def __init__(self, cache_dir: str | Path, identity: CacheIdentity, code_spec: CodeSpec,
                 clips: list[ClipRecord], rows_per_shard: int = 2048, overwrite: bool = False) -> None:
        super().__init__(write_interval="batch")
        self.cache_dir, self.identity, self.code_spec = Path(cache_dir), identity, code_spec
        self.clips, self.rows_per_shard, self.overwrite = clips, rows_per_shard, overwrite
        self.shard_writer: RankShardWriter | None = None
        self.manifest: Manifest | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.is_global_zero:
            if self.overwrite:
                wipe_cache(self.cache_dir)
            check_identity(self.cache_dir, self.identity)
            atomic_write_json(self.cache_dir / RUN_NAME, self.identity.as_dict())
            prepare_for_resume(self.cache_dir)
        trainer.strategy.barrier("code-cache-prepared")
        self.shard_writer = RankShardWriter(self.cache_dir, trainer.global_rank, self.rows_per_shard)

    def write_on_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, prediction: Any,
                           batch_indices: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        clip_ids = prediction["clip_id"].to(torch.int64).cpu().numpy()  # (B,)
        read = np.array([not error for error in prediction["read_error"]])  # (B,) bool
        if not read.all():
            self.shard_writer.record_failures([{"clip_id": int(clip_id), "reason": error} for clip_id, error
                                               in zip(clip_ids, prediction["read_error"]) if error])
        rows = {name: codes_to_uint16(prediction[name].cpu().numpy()[read], name) for name in CODE_ARRAYS}
        for name in CODE_ARRAYS:
            expected = self.code_spec.shape_of(name)
            if rows[name].shape[1:] != expected:
                raise CacheError(f"{name} codes have shape {rows[name].shape[1:]}, the manifest expects {expected}")
        self.shard_writer.add(rows | {"clip_id": clip_ids[read]})

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "predict" or self.shard_writer is None:
            return
        self.shard_writer.flush()
        trainer.strategy.barrier("code-cache-shards-written")
        if trainer.is_global_zero:
            self.manifest = merge_manifest(self.cache_dir, self.identity, self.code_spec, self.clips)
        trainer.strategy.barrier("code-cache-manifest-written")
