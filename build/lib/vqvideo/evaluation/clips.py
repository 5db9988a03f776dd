"""The clips an evaluation scores: deterministic windows of one split, read as prediction reads them.

The windows are the code cache's plan (`vqvideo.cache.plan.plan_clips`: every non-overlapping window of each video
in split order, center crop, never flipped), `--num_clips` of them spread evenly over it. Each clip is named
`<video stem>_f<start frame>` (made unique with a suffix if two videos share a stem), so two systems' eval
folders pair by file name, and each (clip, sample) draws its randomness from the seed, the clip's name and the
sample index only: a clip's videos do not depend on which other clips an eval includes or how they are batched.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import PurePath

from vqvideo.cache.plan import plan_clips
from vqvideo.data.datamodule import KineticsDataModule
from vqvideo.data.inputs import DEFAULT_FPS

@dataclass(frozen=True)
class EvalClip:
    """One evaluated clip (a `FixedClip`): `num_frames` frames of `video_path` from `start_frame` every
    `frame_stride` frames. clip_id: its position in the eval's clip list; fps: the clip's own frame rate."""

    clip_id: int
    name: str
    video_path: str
    rel_path: str
    start_frame: int
    num_frames: int
    frame_stride: int
    fps: float
    flip: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


def spread(count: int | None, total: int) -> list[int]:
    """`count` positions of 0..total-1 spread evenly (all of them for None or count >= total), in order."""
    if count is None or count >= total:
        return list(range(total))
    if count < 1:
        raise ValueError(f"--num_clips must be >= 1, got {count}")
    return [position * total // count for position in range(count)]


def clip_names(stems_and_starts: list[tuple[str, int]]) -> list[str]:
    """`<stem>_f<start>`, a numeric suffix on repeats (two folders holding a video of the same name)."""
    seen: dict[str, int] = {}
    names = []
    for stem, start in stems_and_starts:
        base = f"{stem}_f{start}"
        count = seen[base] = seen.get(base, 0) + 1
        names.append(base if count == 1 else f"{base}_{count}")
    return names


def plan_eval_clips(datamodule: KineticsDataModule, split: str, num_clips: int | None) -> list[EvalClip]:
    """The clips of `split` to evaluate (needs datamodule.setup()); empty if the split has none."""
    records = plan_clips(datamodule, (split,), horizontal_flips=False)
    chosen = [records[position] for position in spread(num_clips, len(records))]
    fps = {entry.path: entry.fps for entry in datamodule.index.entries}
    names = clip_names([(PurePath(record.rel_path).stem, record.start_frame) for record in chosen])
    return [EvalClip(clip_id, name, record.video_path, record.rel_path, record.start_frame, record.num_frames,
                     record.frame_stride, fps[record.video_path] / record.frame_stride
                     if fps[record.video_path] > 0 else DEFAULT_FPS)
            for clip_id, (name, record) in enumerate(zip(names, chosen))]


def clip_key(name: str) -> int:
    """The clip's key for `vqvideo.sampling.base.task_generator(seed, clip_key(name), sample)`: 63 bits of its
    name's sha256."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little") & (2**63 - 1)
