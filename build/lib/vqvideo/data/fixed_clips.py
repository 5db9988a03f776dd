"""Clips at fixed, planned positions (the code cache's plan): a Dataset and a prediction-loop DataModule.

Unlike `ClipDataset` (training: random starts and crops, unreadable videos replaced by other clips), every item
here is one planned clip read exactly as prediction reads it (`read_clip`, center crop), and a clip whose video
cannot be read comes back as zeros with the reason, so the caller can record it as failed and a long job never
dies on one bad file.
"""

from __future__ import annotations

import warnings
from typing import Callable, Protocol

import torch
from pytorch_lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from vqvideo.data.video import VideoReadError, read_clip


class FixedClip(Protocol):
    """What a planned clip must tell: which frames of which video, mirrored or not, under which id."""

    clip_id: int
    video_path: str
    start_frame: int
    num_frames: int
    frame_stride: int
    flip: bool


class FixedClipDataset(Dataset):
    """Items: {"clip_id": () int64, "video": (3, T, H, W) float32 in [-1, 1], "read_error": str ("" if read)}.

    source_sizes: video path → (height, width) from the dataset index, so headers are not probed again."""

    def __init__(self, clips: list[FixedClip], resolution: int, decode_device: str = "cpu",
                 source_sizes: dict[str, tuple[int, int]] | None = None) -> None:
        self.clips, self.resolution, self.decode_device = clips, resolution, decode_device
        self.source_sizes = source_sizes or {}

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, position: int) -> dict[str, torch.Tensor | str]:
        clip = self.clips[position]
        clip_id = torch.tensor(clip.clip_id, dtype=torch.int64)
        try:
            video = read_clip(clip.video_path, clip.start_frame, clip.num_frames, clip.frame_stride,
                              resolution=self.resolution, crop="center", flip=clip.flip,
                              decode_device=self.decode_device, source_size=self.source_sizes.get(clip.video_path))
        except VideoReadError as error:
            warnings.warn(f"clip {clip.clip_id} not read: {error}", stacklevel=2)
            blank = torch.zeros(3, clip.num_frames, self.resolution, self.resolution)
            return {"clip_id": clip_id, "video": blank, "read_error": str(error)}
        return {"clip_id": clip_id, "video": video, "read_error": ""}


class FixedClipsDataModule(LightningDataModule):
    """The clips of `clips` whose id `done_ids()` does not return, in plan order, never shuffled (prediction loop).

    done_ids: called when the dataloader is built — after every rank's setup — so a caller can first clean up a
    killed run and then hand out only the clips still missing (the code cache's resume)."""

    def __init__(self, clips: list[FixedClip], resolution: int, batch_size: int = 8, num_workers: int = 0,
                 decode_device: str = "cpu", source_sizes: dict[str, tuple[int, int]] | None = None,
                 done_ids: Callable[[], set[int]] = set) -> None:
        super().__init__()
        self.clips, self.resolution, self.source_sizes, self.done_ids = clips, resolution, source_sizes, done_ids
        self.batch_size, self.num_workers, self.decode_device = batch_size, num_workers, decode_device
        self.num_pending: int | None = None

    def predict_dataloader(self) -> DataLoader:
        done = self.done_ids()
        pending = [clip for clip in self.clips if clip.clip_id not in done]
        self.num_pending = len(pending)
        dataset = FixedClipDataset(pending, self.resolution, self.decode_device, self.source_sizes)
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers,
                          persistent_workers=False)
