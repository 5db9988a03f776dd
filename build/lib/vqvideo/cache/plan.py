"""Which clips the cache holds: a pure function of the dataset index and the data options.

The clips are `KineticsDataModule.split_windows(split)` at their deterministic starts: every non-overlapping
window of each video (or `max_clips_per_video` evenly spread, `vqvideo.data.windows.clip_starts`), with the
module's split rules (Kinetics folders, hashed folder split, embedded clips cut in time) and per-video strides.
So two runs — or a run and its restart — plan the very same clips in the very same order; a clip's id is its
position in the plan. With `horizontal_flips`, every train clip is also encoded mirrored (its own clip id),
so flip augmentation survives caching; validation clips are never flipped.
"""

from __future__ import annotations

import json

from vqvideo.files import bytes_sha256
from vqvideo.cache.manifest import ClipRecord
from vqvideo.data.datamodule import SPLITS, KineticsDataModule


def plan_clips(datamodule: KineticsDataModule, splits: tuple[str, ...], horizontal_flips: bool) -> list[ClipRecord]:
    """Every clip to encode, ordered by (split, window order, flip); clip_id = position. Needs dm.setup()."""
    unknown = set(splits) - set(SPLITS)
    if unknown or not splits:
        raise ValueError(f"splits must be a non-empty subset of {SPLITS}, got {list(splits)}")
    clips: list[ClipRecord] = []
    for split in splits:
        flips = (False, True) if horizontal_flips and split == "train" else (False,)
        for window in datamodule.split_windows(split):
            entry = datamodule.index.entries[window.video_index]
            for flip in flips:
                clips.append(ClipRecord(
                    clip_id=len(clips), video_path=entry.path, rel_path=entry.rel_path,
                    start_frame=window.start_frame, num_frames=datamodule.hparams.num_frames,
                    frame_stride=window.frame_stride, flip=flip, label=entry.label, split=split,
                ))
    return clips


def plan_sha256(clips: list[ClipRecord]) -> str:
    """Checksum of the plan (relative paths: the same dataset under another root plans the same clips)."""
    rows = [[c.rel_path, c.start_frame, c.num_frames, c.frame_stride, c.flip, c.label, c.split] for c in clips]
    return bytes_sha256(json.dumps(rows).encode())
