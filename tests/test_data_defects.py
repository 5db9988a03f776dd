"""The defects real downloads have (`vqvideo.data.defect_corpus`, written here with PyAV): the index keeps every
frame that reads exactly, and kept frame i is PyAV's presented frame i (same index, pixel-close)."""

import av
import numpy as np
import pytest

from vqvideo.data.defect_corpus import DEFECTS, write_corpus
from vqvideo.data.index import build_index
from vqvideo.data.video import FrameSize, decode_frames

UNREADABLE = {"audio_only.mp4": "not a readable video", "zero_length.mp4": "empty file"}
DAMAGED = {"damaged_tail.mp4", "damaged_packet.mp4", "truncated_download.mp4"}
CLIP = 16


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("defects")
    write_corpus(folder)
    return folder, {entry.rel_path: entry for entry in build_index(str(folder), cache_dir=None, progress=False).entries}


def presented(path) -> tuple[list[np.ndarray], int | None]:
    """PyAV's frames (upright, rgb24) and how many came before the first packet it could not decode."""
    frames, first_failure = [], None
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        for packet in container.demux(stream):
            try:
                decoded = packet.decode()
            except av.FFmpegError:
                first_failure = len(frames) if first_failure is None else first_failure
                continue
            for frame in decoded:
                quarter_turns = {-90: -1, 90: 1}.get(int(frame.rotation), 0)
                frames.append(np.rot90(frame.to_ndarray(format="rgb24"), quarter_turns))
    return frames, first_failure


def test_every_defect_is_in_the_corpus(corpus):
    _, entries = corpus
    assert entries.keys() == DEFECTS.keys()


def test_only_files_without_a_video_frame_are_skipped(corpus):
    _, entries = corpus
    skipped = {name: entry.reason for name, entry in entries.items() if not entry.readable}
    assert skipped.keys() == UNREADABLE.keys()
    for name, reason in UNREADABLE.items():
        assert reason in skipped[name]


@pytest.mark.parametrize("name", sorted(set(DEFECTS) - set(UNREADABLE)))
def test_kept_frames_are_pyav_frames_at_the_same_index(corpus, name):
    folder, entries = corpus
    entry = entries[name]
    reference, first_failure = presented(folder / name)
    assert entry.decoded_frames == len(reference)
    expected = len(reference) if first_failure is None else first_failure
    assert entry.num_frames == expected and entry.num_frames >= CLIP
    assert (name in DAMAGED) == (entry.read_mode == "pyav")
    if name.startswith(("stream_copy_cut", "open_gop")):
        assert entry.read_mode == "in_order"  # decord's seek gives other frames there
    last = entry.num_frames - 1
    for start in sorted({0, last // 3, last // 2 + 1, last - CLIP + 1}):  # the last clip ends on the last frame
        indices = list(range(start, start + CLIP))
        frames = decode_frames(entry.path, indices, FrameSize(entry.height, entry.width), read_mode=entry.read_mode)
        for index, frame in zip(indices, frames.numpy().astype(np.int16)):
            nearby = range(max(0, index - 2), min(len(reference), index + 3))
            distance = {other: np.abs(frame - reference[other]).mean() for other in nearby}
            assert distance[index] < 2.0 and min(distance, key=distance.get) == index, (name, index, distance)


def test_damaged_files_keep_the_same_frames_every_probe(corpus):
    folder, entries = corpus
    again = build_index(str(folder), cache_dir=None, progress=False).entries
    assert {e.rel_path: e for e in again if e.rel_path in DAMAGED} == {name: entries[name] for name in DAMAGED}
    assert all(entries[name].frames_lost <= 2 for name in DAMAGED - {"damaged_packet.mp4"})
