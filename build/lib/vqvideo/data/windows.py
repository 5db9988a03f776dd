"""Which frames of a video make a clip: pure functions, no I/O, so the DataModule, the code cache and the
tests all agree on the same windows.

A clip of `num_frames` frames taken every `frame_stride` frames spans `(num_frames - 1) * frame_stride + 1`
video frames. Validation (and the code cache) use the deterministic non-overlapping windows of
`clip_starts`; training draws each window's start uniformly from its share of the video
(`train_start_range`), so an epoch still has one item per window but sees every offset over time.
"""

from __future__ import annotations

import math
from typing import NamedTuple


class ClipWindow(NamedTuple):
    """One dataset item: a clip of video `video_index` (index into the DataModule's entries)."""

    video_index: int
    start_frame: int  # deterministic start (validation, cache)
    frame_stride: int
    start_choices: range  # starts a training item may draw from; range(start_frame, start_frame + 1) if fixed


def clip_span(num_frames: int, frame_stride: int = 1) -> int:
    """Number of video frames a clip covers."""
    if num_frames < 1 or frame_stride < 1:
        raise ValueError(f"num_frames ({num_frames}) and frame_stride ({frame_stride}) must be >= 1")
    return (num_frames - 1) * frame_stride + 1


def clip_starts(num_video_frames: int, num_frames: int, frame_stride: int = 1,
                max_clips: int | None = None, step: int | None = None) -> list[int]:
    """Deterministic clip start frames of a video of `num_video_frames` frames.

    Windows start at frame 0 and every `step` frames after (None: the clip's span, so they do not overlap); with
    `max_clips`, that many are kept, evenly spread (the middle one of each of `max_clips` equal groups, so
    `max_clips=1` is the central window).
    """
    span = clip_span(num_frames, frame_stride)
    if step is not None and step < 1:
        raise ValueError(f"clip_step must be >= 1 or None (non-overlapping), got {step}")
    if num_video_frames < span:
        return []
    starts = list(range(0, num_video_frames - span + 1, step or span))
    if max_clips is not None and len(starts) > max_clips:
        if max_clips < 1:
            raise ValueError(f"max_clips must be >= 1 or None, got {max_clips}")
        starts = [starts[(2 * i + 1) * len(starts) // (2 * max_clips)] for i in range(max_clips)]
    return starts


def train_start_range(num_video_frames: int, span: int, window: int, num_windows: int) -> range:
    """Starts window `window` of `num_windows` may take in training: the valid starts
    `0 .. num_video_frames - span` cut into `num_windows` equal, disjoint parts."""
    num_valid_starts = num_video_frames - span + 1
    low = window * num_valid_starts // num_windows
    high = (window + 1) * num_valid_starts // num_windows
    return range(low, max(high, low + 1))


def split_frame_range(num_video_frames: int, split: str, val_fraction: float) -> range:
    """Frames of a temporally split video belonging to `split`: validation is the last `val_fraction`."""
    num_val = math.ceil(num_video_frames * val_fraction)
    boundary = num_video_frames - num_val
    return range(boundary, num_video_frames) if split in ("val", "test") else range(0, boundary)


def video_windows(video_index: int, frames: range, num_frames: int, frame_stride: int, train: bool,
                  max_clips: int | None = None, step: int | None = None) -> list[ClipWindow]:
    """The clip windows of one video restricted to `frames` (a contiguous range of its frame numbers)."""
    span = clip_span(num_frames, frame_stride)
    starts = clip_starts(len(frames), num_frames, frame_stride, max_clips, step)
    windows = []
    for window, start in enumerate(starts):
        if train:
            local = train_start_range(len(frames), span, window, len(starts))
            choices = range(frames.start + local.start, frames.start + local.stop)
        else:
            choices = range(frames.start + start, frames.start + start + 1)
        windows.append(ClipWindow(video_index, frames.start + start, frame_stride, choices))
    return windows


def stride_for_fps(video_fps: float, target_fps: float | None, frame_stride: int) -> int:
    """Frame stride that samples a `video_fps` video at about `target_fps` (or `frame_stride` if no target)."""
    if target_fps is None or video_fps <= 0:
        return frame_stride
    return max(1, round(video_fps / target_fps))
