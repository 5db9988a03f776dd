"""Frames decoded once into RAM (`frames_in_memory_mb`): the same clips as per-clip decoding, bit for bit; the
budget decides, with one message when it is too small; DataLoader workers share the frames instead of copying."""

from __future__ import annotations

import multiprocessing
import os
import sys
import warnings

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from vqvideo.data import dataset as dataset_module
from vqvideo.data.datamodule import SPLITS, KineticsDataModule
from vqvideo.data.frames_in_memory import BYTES_PER_MB, bytes_needed, frame_spans, megabytes
from vqvideo.data.video import cut_clip

NUM_FRAMES, RESOLUTION = 8, 32


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("index"))


def make_dm(index_dir, **kwargs):
    kwargs = {"num_frames": NUM_FRAMES, "resolution": RESOLUTION, "batch_size": 4, "num_workers": 0,
              "random_flip": True, "index_cache_dir": index_dir, "progress": False, **kwargs}
    dm = KineticsDataModule(**kwargs)
    dm.setup("fit")
    return dm


def needed_bytes(dm) -> int:
    spans = frame_spans([w for split in SPLITS for w in dm.split_windows(split)], dm.hparams.num_frames)
    return bytes_needed(dm.index.entries, spans, dm.hparams.resolution)


def items(dataset, positions, seed):
    out = []
    for position in positions:
        torch.manual_seed(seed + position)  # fixes the random start, flip and crop of a train item
        out.append(dataset[position])
    return out


@pytest.mark.parametrize("frame_stride", [1, 2])
def test_in_ram_clips_are_bit_identical_to_per_clip_decoding(index_dir, monkeypatch, frame_stride):
    per_clip = make_dm(index_dir, frame_stride=frame_stride)
    in_ram = make_dm(index_dir, frame_stride=frame_stride, frames_in_memory_mb=64)
    assert per_clip.frames_in_memory is None and in_ram.frames_in_memory is not None
    positions = {"train": range(0, len(per_clip.dataset("train")), 3), "val": range(len(per_clip.dataset("val")))}
    expected = {split: items(per_clip.dataset(split), positions[split], seed=7) for split in positions}
    for split in ("train", "val"):
        in_ram.dataset(split)
    monkeypatch.setattr(dataset_module, "read_clip", None)  # clips from RAM never decode (None is not callable)
    cuts = []

    def recording_cut_clip(frames, resolution, crop, flip, generator=None):
        cuts.append((crop, flip))
        return cut_clip(frames, resolution, crop, flip, generator)

    monkeypatch.setattr(dataset_module, "cut_clip", recording_cut_clip)
    for split, reference in expected.items():
        got = items(in_ram.dataset(split), positions[split], seed=7)
        for mine, theirs in zip(got, reference):
            assert mine.keys() == theirs.keys()
            assert torch.equal(mine["video"], theirs["video"]), (split, theirs["clip_index"], theirs["start_frame"])
            assert all(mine[key] == theirs[key] for key in ("start_frame", "clip_index", "video_index", "label"))
    num_train = len(expected["train"])
    assert set(cuts[:num_train]) == {("random", False), ("random", True)}  # both flip states were compared
    assert set(cuts[num_train:]) == {("center", False)}
    assert len({item["start_frame"] for item in expected["train"]}) > len(per_clip.split_entries("train"))


def test_budget_decides_and_over_budget_says_so_once(index_dir):
    needed = needed_bytes(make_dm(index_dir))
    fits = make_dm(index_dir, frames_in_memory_mb=megabytes(needed))
    for split in ("train", "val"):
        assert set(fits.dataset(split).frames) == {w.video_index for w in fits.split_windows(split)}
    assert 0 < fits.frames_in_memory.num_bytes == needed <= megabytes(needed) * BYTES_PER_MB
    storages = {held.frames.untyped_storage().data_ptr() for held in fits.dataset("train").frames.values()}
    assert len(storages) == 1 and fits.frames_in_memory.buffer.is_shared()  # one shared buffer: one open file
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        over = make_dm(index_dir, frames_in_memory_mb=megabytes(needed) - 1)
        over.dataset("train"), over.dataset("val")
    messages = [str(w.message) for w in caught if "frames_in_memory_mb" in str(w.message)]
    assert messages == [f"frames_in_memory_mb={megabytes(needed) - 1}: the decoded frames of the 3 videos at "
                        f"{RESOLUTION} px need {megabytes(needed)} MB, more than the budget, so every clip is decoded "
                        f"from its file. To hold them in RAM instead, set frames_in_memory_mb >= {megabytes(needed)}."]
    assert over.frames_in_memory is None and over.dataset("train").frames == {}
    assert make_dm(index_dir).dataset("train").frames == {}  # None: per-clip decoding, nothing said
    with pytest.raises(ValueError, match="frames_in_memory_mb must be >= 0"):
        KineticsDataModule(frames_in_memory_mb=-1)


def _mapping_of(address: int) -> tuple[str, str, str]:
    """(permissions, device, inode) of the memory mapping of this process that holds `address`."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            low, high = (int(bound, 16) for bound in fields[0].split("-"))
            if low <= address < high:
                return fields[1], fields[3], fields[4]
    raise LookupError(f"address {address:#x} is not mapped")


class FrameMappings(Dataset):
    """Reports, from inside a DataLoader worker, which mapping holds each video's frames there."""

    def __init__(self, clips):
        self.clips = clips

    def __len__(self) -> int:
        return 4

    def __getitem__(self, position: int) -> dict:
        video = self.clips[position]["video"]  # a clip cut from the frames, in this worker
        mappings = {i: _mapping_of(held.frames.data_ptr()) for i, held in self.clips.frames.items()}
        return {"pid": os.getpid(), "mappings": mappings, "shape": tuple(video.shape)}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
@pytest.mark.parametrize("context", ["fork", pytest.param("spawn", marks=pytest.mark.slow)])  # spawn: ~15 s
def test_two_workers_share_the_frames_instead_of_copying_them(index_dir, context):
    dm = make_dm(index_dir, frames_in_memory_mb=64, num_workers=2)
    clips = dm.dataset("train")
    in_parent = {i: _mapping_of(held.frames.data_ptr()) for i, held in clips.frames.items()}
    assert len(in_parent) == 3 and all("s" in permissions for permissions, _, _ in in_parent.values())
    loader = DataLoader(FrameMappings(clips), batch_size=None, num_workers=2,
                        multiprocessing_context=multiprocessing.get_context(context))
    reports = list(loader)
    assert len({report["pid"] for report in reports} - {os.getpid()}) == 2
    for report in reports:  # the same shared-memory file in both workers as in the parent: no copy
        assert {i: tuple(mapping) for i, mapping in report["mappings"].items()} == in_parent
        assert tuple(report["shape"]) == (3, NUM_FRAMES, RESOLUTION, RESOLUTION)


def test_two_persistent_workers_serve_the_same_clips(index_dir):
    dm = make_dm(index_dir, frames_in_memory_mb=64, num_workers=2)
    reference = make_dm(index_dir).dataset("val")
    loader = dm.val_dataloader()
    assert loader.num_workers == 2 and loader.persistent_workers
    first = list(loader)
    workers = [worker.pid for worker in loader._iterator._workers]
    second = list(loader)
    assert [worker.pid for worker in loader._iterator._workers] == workers  # the same processes, epoch after epoch
    expected = torch.stack([reference[i]["video"] for i in range(len(reference))])
    for batches in (first, second):
        assert torch.equal(torch.cat([batch["video"] for batch in batches]), expected)
    train = list(dm.train_dataloader())
    assert sum(len(batch["video"]) for batch in train) == len(dm.split_windows("train"))
