"""Decoded frames held in RAM: each video of a small dataset decoded once, every clip cut from it.

A dataset whose frames at the training resolution fit a memory budget (the bundled clips at 64 px: 11 MB) need not
decode every clip again from its file. `FramesInMemory` decodes each video's needed frames once, in the process
that builds the datasets (before DataLoader workers start), through `resized_frames` — the same decoding and
resizing `read_clip` does — into one uint8 buffer in shared memory. Workers then read the same pages: forked
workers inherit the shared mapping, spawned ones receive its file descriptor (torch's tensor pickling), so the
frames are never copied per worker (a memory-mapped .npy would be: NumPy pickles a memmap's data). Clips are cut from them by `cut_clip`, the crop/flip/normalise `read_clip`
uses, so a clip is bit for bit the one per-clip decoding gives for the same window, crop and flip.
"""

from __future__ import annotations

import itertools
import math
import warnings
from typing import NamedTuple

import torch
from tqdm import tqdm

from vqvideo.data.index import VideoEntry
from vqvideo.data.video import FrameSize, VideoReadError, resized_frames, resized_size
from vqvideo.data.windows import ClipWindow, clip_span

BYTES_PER_MB = 2**20


class VideoFrames(NamedTuple):
    """Frames first_frame .. first_frame + len(frames) - 1 of one video: (N, H', W', 3) uint8, shorter side =
    the resolution."""

    first_frame: int
    frames: torch.Tensor

    def clip(self, start_frame: int, num_frames: int, frame_stride: int) -> torch.Tensor:
        """Frames start_frame, start_frame + frame_stride, ...: a (T, H', W', 3) uint8 view, no copy."""
        first = start_frame - self.first_frame
        last = first + clip_span(num_frames, frame_stride) - 1
        if first < 0 or last >= len(self.frames):
            raise IndexError(f"frames {start_frame}..{start_frame + last - first} are not held (held: "
                             f"{self.first_frame}..{self.first_frame + len(self.frames) - 1})")
        return self.frames[first:last + 1:frame_stride]


def frame_spans(windows: list[ClipWindow], num_frames: int) -> dict[int, range]:
    """Per video index, the contiguous frames any of `windows` may read (every start each window may draw)."""
    spans: dict[int, range] = {}
    for window in windows:
        first = window.start_choices.start
        stop = window.start_choices[-1] + clip_span(num_frames, window.frame_stride)
        held = spans.get(window.video_index)
        spans[window.video_index] = range(min(first, held.start), max(stop, held.stop)) if held else range(first, stop)
    return spans


def frame_shape(entry: VideoEntry, resolution: int) -> tuple[int, int, int]:
    """(H', W', 3): one frame of `entry` with its shorter side resized to `resolution`, as `resized_frames` gives it."""
    size = resized_size(FrameSize(entry.height, entry.width), resolution)
    return size.height, size.width, 3


def bytes_needed(entries: list[VideoEntry], spans: dict[int, range], resolution: int) -> int:
    """What holding the frames of `spans` (video index -> frames) at `resolution` takes (uint8)."""
    return sum(len(span) * math.prod(frame_shape(entries[video_index], resolution))
               for video_index, span in spans.items())


def megabytes(num_bytes: int) -> int:
    """num_bytes in MB (2**20 bytes), rounded up."""
    return math.ceil(num_bytes / BYTES_PER_MB)


class FramesInMemory:
    """The decoded frames of the videos `spans` names, filled by `load` (see the module docstring).

    All videos share one shared-memory buffer, allocated here at its final size (`bytes_needed`): torch keeps a
    file descriptor open per shared storage, so one storage per video would exhaust the open-file limit (often
    1024) on a folder of many short videos."""

    def __init__(self, entries: list[VideoEntry], spans: dict[int, range], resolution: int,
                 decode_device: str = "cpu", device_id: int = 0, progress: bool = False) -> None:
        self.entries, self.spans, self.resolution = entries, spans, resolution
        self.decode_device, self.device_id, self.progress = decode_device, device_id, progress
        self.shapes = {i: (len(span), *frame_shape(entries[i], resolution)) for i, span in spans.items()}
        sizes = [math.prod(shape) for shape in self.shapes.values()]
        self.offsets = dict(zip(self.shapes, itertools.accumulate(sizes, initial=0)))
        self.buffer = torch.empty(sum(sizes), dtype=torch.uint8).share_memory_()  # (bytes_needed,)
        self.videos: dict[int, VideoFrames] = {}
        self._failed: set[int] = set()

    @property
    def num_bytes(self) -> int:
        """Bytes of decoded frames held now."""
        return sum(video.frames.numel() for video in self.videos.values())

    def load(self, video_indices: set[int]) -> dict[int, VideoFrames]:
        """Decode the videos of `video_indices` not held yet (once each); return those held. A video that fails to
        decode is left out with one warning: its clips then go through per-clip decoding, which reports them."""
        missing = sorted(i for i in video_indices if i not in self.videos and i not in self._failed)
        for video_index in tqdm(missing, desc="decoding videos into RAM", unit="video",
                                disable=not self.progress or len(missing) < 2):
            try:
                self.videos[video_index] = self._decode(video_index)
            except VideoReadError as error:
                self._failed.add(video_index)
                warnings.warn(f"not holding {error.path} in RAM: {error.reason}", stacklevel=2)
        return {i: self.videos[i] for i in video_indices if i in self.videos}

    def _decode(self, video_index: int) -> VideoFrames:
        entry, span, shape = self.entries[video_index], self.spans[video_index], self.shapes[video_index]
        frames = resized_frames(entry.path, list(span), self.resolution, self.decode_device, self.device_id,
                                source_size=(entry.height, entry.width))  # (N, H', W', 3) uint8
        if tuple(frames.shape) != shape:
            raise VideoReadError(entry.path, f"decoded to {tuple(frames.shape)}, not the planned {shape}")
        offset = self.offsets[video_index]
        held = self.buffer[offset:offset + frames.numel()].view(shape)
        held.copy_(frames)
        return VideoFrames(span.start, held)
