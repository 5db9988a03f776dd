"""`EvalWriter`: the prediction-writer callback of `vqvideo eval` (the code cache writer's pattern for eval records).

Lifecycle on every rank (all hooks run outside `predict_step`):
  setup     rank 0 wipes the folder with `overwrite`, refuses another command's folder, records this command's
            identity (run.json) and deletes what a killed run left half-written; a barrier.
  write_on_batch_end   per clip: scores, videos, codes, then its record (atomic files; the record last).
  teardown  (unless an error stopped the loop) barrier: every rank's records are written; rank 0 builds the report;
            barrier.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytorch_lightning as pl
from pytorch_lightning.callbacks import BasePredictionWriter

from vqvideo.evaluation.clips import EvalClip
from vqvideo.evaluation.module import EvalBatch
from vqvideo.evaluation.records import ScoringSpec, write_clip, write_failure
from vqvideo.evaluation.run import check_run, remove_leftovers, wipe, write_run


class EvalWriter(BasePredictionWriter):
    """Writes each predicted clip of `clips` under `out`; after all ranks finish, rank 0 calls `finish()`.

    identity: what the results depend on (run.json); a folder recorded with another identity is refused."""

    def __init__(self, out: str | Path, clips: list[EvalClip], identity: dict, spec: ScoringSpec,
                 finish: Callable[[], None], overwrite: bool = False) -> None:
        super().__init__(write_interval="batch")
        self.out, self.clips, self.identity, self.spec = Path(out), clips, identity, spec
        self.finish, self.overwrite = finish, overwrite
        self.failed = False  # an error stopped the prediction loop

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.is_global_zero:
            if self.overwrite:
                wipe(self.out)
            check_run(self.out, self.identity)
            write_run(self.out, self.identity)
            remove_leftovers(self.out)
        trainer.strategy.barrier("eval-folder-prepared")

    def write_on_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, prediction: EvalBatch,
                           batch_indices: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        for clip_id, output in prediction.clip_outputs():
            clip = self.clips[clip_id]
            if isinstance(output, str):
                write_failure(self.out, clip, output)
            else:
                write_clip(self.out, clip, output, self.spec)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self.failed = True

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "predict" or self.failed:
            return  # after an error the records are incomplete: the same command resumes them
        trainer.strategy.barrier("eval-records-written")
        failure = None
        if trainer.is_global_zero:
            try:
                self.finish()
            except Exception as error:  # noqa: BLE001 - re-raised after the barrier, so no rank waits forever
                failure = error
        trainer.strategy.barrier("eval-report-written")
        if failure is not None:
            raise failure

