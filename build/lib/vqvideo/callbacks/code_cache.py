"""`CodeCacheWriter`: the prediction-writer callback that turns predicted codes into the code cache's shards.

Lifecycle on every rank (all hooks run outside `predict_step`):
  setup     rank 0 checks/records the run identity, wipes the cache with `overwrite`, and cleans up what a
            killed run left (temp files, unrecorded shard files); a barrier; then each rank opens its writer.
  write_on_batch_end   codes of a batch → uint16 rows; a shard is written each `rows_per_shard` rows.
  teardown  flush the rank's last shard; barrier; rank 0 checks that the shards hold every planned clip
            exactly once and writes manifest.json; barrier. (Teardown runs even when a rank got no batch.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BasePredictionWriter

from vqvideo.cache.manifest import CODE_ARRAYS, RUN_NAME, CacheError, CacheIdentity, ClipRecord, CodeSpec, Manifest
from vqvideo.cache.shards import RankShardWriter, codes_to_uint16, prepare_for_resume
from vqvideo.cache.writer import check_identity, merge_manifest, wipe_cache
from vqvideo.files import atomic_write_json


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
