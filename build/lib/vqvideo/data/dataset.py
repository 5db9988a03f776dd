"""`ClipDataset`: one item per clip window, decoded on demand by `read_clip` (inside the DataLoader worker), or
cut by `cut_clip` from frames already decoded into RAM (`vqvideo.data.frames_in_memory`) — the same clip either way.

A file that fails at read time (it passed the index probe but its frames do not decode) never ends an
epoch: it is reported once per process with a warning naming it, and the item is replaced by the next
window of another video (deterministic: i + 1, i + 2, ...).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import torch
from torch.utils.data import Dataset

from vqvideo.data.index import VideoEntry
from vqvideo.data.frames_in_memory import VideoFrames
from vqvideo.data.video import VideoReadError, cut_clip, read_clip
from vqvideo.data.windows import ClipWindow


class ClipSpec(NamedTuple):
    """How every clip of a dataset is made."""

    num_frames: int = 16
    resolution: int = 64
    train: bool = False  # random start within the window, random crop (and flip if random_flip)
    random_flip: bool = False
    decode_device: str = "cpu"
    device_id: int = 0


class ClipDataset(Dataset):
    """Items are dicts: video (3, T, H, W) float32 in [-1, 1]; label, video_index, start_frame, clip_index
    ints (label -1 = none; video_index indexes `entries`; clip_index is the window actually delivered).

    frames: decoded frames per video index (`FramesInMemory.load`); clips of the other videos are decoded per clip."""

    def __init__(self, entries: list[VideoEntry], label_ids: list[int], windows: list[ClipWindow],
                 spec: ClipSpec, frames: dict[int, VideoFrames] | None = None):
        if not windows:
            raise ValueError("ClipDataset needs at least one clip window")
        self.entries = entries
        self.label_ids = label_ids
        self.windows = windows
        self.spec = spec
        self.frames = frames or {}
        self._failed_videos: set[int] = set()  # per process: videos whose read failed here

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, clip_index: int) -> dict:
        if not 0 <= clip_index < len(self.windows):
            raise IndexError(f"clip index {clip_index} out of range for {len(self.windows)} clips")
        for offset in range(len(self.windows)):
            candidate = (clip_index + offset) % len(self.windows)
            window = self.windows[candidate]
            if window.video_index in self._failed_videos:
                continue
            try:
                return self._load(candidate, window)
            except VideoReadError as error:
                self._failed_videos.add(window.video_index)
                warnings.warn(f"skipping unreadable video {error.path}: {error.reason}; "
                              f"clip {clip_index} is replaced by a clip of another video", stacklevel=2)
        failed = sorted(self.entries[i].path for i in self._failed_videos)
        raise RuntimeError(f"No video of this dataset could be read; failed: {failed[:5]} ({len(failed)} in all).")

    def _load(self, clip_index: int, window: ClipWindow) -> dict:
        entry = self.entries[window.video_index]
        spec = self.spec
        start = window.start_frame
        if spec.train:
            choices = window.start_choices
            start = choices[int(torch.randint(len(choices), (1,)))]
        flip = spec.train and spec.random_flip and bool(torch.rand(()) < 0.5)
        crop = "random" if spec.train else "center"
        held = self.frames.get(window.video_index)
        if held is not None:
            frames = held.clip(start, spec.num_frames, window.frame_stride)  # (T, H', W', 3) uint8 view
            video = cut_clip(frames, spec.resolution, crop, flip)
        else:
            video = read_clip(entry.path, start, spec.num_frames, window.frame_stride, spec.resolution, crop=crop,
                              flip=flip, decode_device=spec.decode_device, device_id=spec.device_id,
                              source_size=(entry.height, entry.width))
        return {"video": video, "label": self.label_ids[window.video_index], "video_index": window.video_index,
                "start_frame": start, "clip_index": clip_index}
