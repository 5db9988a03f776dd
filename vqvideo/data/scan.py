"""The index probe's decoding pass: which frames of a file decord delivers exactly as PyAV presents them.

Frame i of a video is the i-th frame FFmpeg presents (PyAV's `container.decode`, as `ffmpeg -i` shows it): after
the MP4 edit list, without the frames a decoder cannot decode. decord numbers frames its own way on awkward files,
measured on `vqvideo.data.defect_corpus` (decord2 3.4.0):
- A stream-copy cut (`ffmpeg -ss S -i IN -c copy`) keeps pre-roll packets that its edit list hides. decord counts
  them (len 122 where FFmpeg presents 102) and gives them negative timestamps; in order it delivers FFmpeg's frames
  0.. and then repeats the last one, while a seek lands the pre-roll's length early (frame 60 read as 40).
- Open GOPs (x265's default, x264's open-gop=1): after a seek to a keyframe, decord's frames 17..21 are others.
- A damaged last packet, a download cut mid-file: decord fails on the frames it cannot decode, and reads ahead by
  a timing-dependent amount: under load, clips up to ~30 frames before the damage failed in one run and not in
  the next (the longest prefix decord decoded of one file was 45, 37 and 15 frames in three runs). PyAV decoding
  one packet at a time is the same every run: such files keep the frames PyAV presents before the first packet it
  cannot decode, and their clips are decoded with PyAV (read mode "pyav"), through the same filters.
The scan therefore decodes the file twice in lockstep at SCAN_RESOLUTION — PyAV through the scale and format
filters decord uses (bit-identical output) and decord in order — and keeps the frames 0 .. n-1 that match exactly.
decord's seek is then checked at up to MAX_SEEK_CHECKS keyframes; where it differs, clips of the file are read in
order from frame 0 (read mode "in_order"). Last, the last kept frame is read the way clips read it (with decord's
repeat check), stepping back one frame at a time, at most MAX_TAIL_STEPS, until it reads back exactly.
"""

from __future__ import annotations

import hashlib
from collections import deque
from typing import Iterator, NamedTuple

import numpy as np

from vqvideo.data.video import (FrameSize, VideoReadError, decode_frames, decord_errors, open_reader, pyav_frames,
                                decord_message, resized_size, seeks_exactly)

SCAN_RESOLUTION = 64  # shorter side of the comparison: the pass checks which frames decode, not their pixels
SCAN_CHUNK = 64  # frames per decord get_batch in the in-order pass
MAX_SEEK_CHECKS = 8  # keyframes whose seek is compared with the in-order pass
MAX_TAIL_STEPS = 8  # frames the read-back check may step back further if the last kept frame still fails


class VideoScan(NamedTuple):
    """What `scan_video` found: frames 0 .. num_frames - 1 read exactly as FFmpeg presents them."""

    num_frames: int  # kept
    fps: float
    read_mode: str  # READ_MODES: how clips of the file must be decoded
    reference_frames: int  # frames PyAV presents
    matched_frames: int  # frames decord delivered in order equal to PyAV's, before the read-ahead check


def scan_size(source: FrameSize) -> FrameSize:
    size = resized_size(source, SCAN_RESOLUTION)
    return FrameSize(size.height, size.width | 1)  # an odd width: decord cannot copy out some even widths


def decord_frames(path: str, size: FrameSize) -> Iterator[np.ndarray]:
    """decord's frames in order from frame 0 until the first it repeats or fails on, exactly located: in a failing
    chunk, fresh readers decode frames 0 .. m-1 in one batch for m found by bisection (the largest that succeeds)."""
    reader, start = open_reader(path, size), 0
    try:
        for start in range(0, len(reader), SCAN_CHUNK):
            yield from reader.get_batch(list(range(start, min(len(reader), start + SCAN_CHUNK)))).asnumpy()
        return
    except decord_errors():
        good, bad = start, min(len(reader), start + SCAN_CHUNK)
    finally:
        del reader
    frames = None
    while bad - good > 1:
        middle = (good + bad) // 2
        try:
            reader = open_reader(path, size)
            frames, good = reader.get_batch(list(range(middle))).asnumpy(), middle
        except decord_errors():
            bad = middle
        finally:
            del reader
    if frames is not None:
        yield from frames[start:good]


class _InOrder(NamedTuple):
    matched: int
    reference: int
    first_failure: int | None  # frames PyAV presented before the first packet it could not decode
    kept_pictures: dict[int, np.ndarray]  # matched frames the seek and read-ahead checks compare with


def _match_in_order(path: str, size: FrameSize, checks: set[int]) -> _InOrder:
    """Count the leading frames where decord's in-order frame equals PyAV's (and every frame PyAV presents);
    hold the matched frames of `checks` and the last ones the read-back check compares with. PyAV decodes first
    (keeping a digest per frame), then decord: the two decoders never run interleaved."""
    failures: list[int] = []
    digests = [hashlib.sha1(frame.tobytes()).digest() for frame in pyav_frames(path, size, failures)]
    matched, held, tail, decord = 0, {}, deque(maxlen=MAX_TAIL_STEPS + 1), decord_frames(path, size)
    try:
        for ours in decord:
            if matched >= len(digests) or hashlib.sha1(ours.tobytes()).digest() != digests[matched]:
                break
            tail.append((matched, ours))
            if matched in checks:
                held[matched] = ours
            matched += 1
    finally:
        decord.close()  # its reader goes now, not at garbage collection
    return _InOrder(matched, len(digests), failures[0] if failures else None, {**held, **dict(tail)})


def _seek_check_keys(key_indices: list[int], num_frames: int) -> list[int]:
    """Up to MAX_SEEK_CHECKS keyframes after frame 0, evenly spread."""
    keys = [k for k in key_indices if 0 < k < num_frames]
    if len(keys) <= MAX_SEEK_CHECKS:
        return keys
    return [keys[(2 * i + 1) * len(keys) // (2 * MAX_SEEK_CHECKS)] for i in range(MAX_SEEK_CHECKS)]


def _reads_back(path: str, frames: list[int], size: FrameSize, mode: str, pictures: dict[int, np.ndarray]) -> bool:
    """Whether `frames` read the way clips read them (decord's repeat check on) equal the in-order pictures."""
    try:
        read = decode_frames(path, frames, size, read_mode=mode).numpy()
    except VideoReadError:
        return False
    return all(np.array_equal(picture, pictures[frame]) for frame, picture in zip(frames, read))


class _ReaderFacts(NamedTuple):
    length: int
    fps: float
    timestamps_seek: bool
    keys: list[int]


def _reader_facts(path: str, size: FrameSize) -> _ReaderFacts:
    reader = open_reader(path, size)
    try:
        return _ReaderFacts(len(reader), float(reader.get_avg_fps()), seeks_exactly(reader), reader.get_key_indices())
    except decord_errors() as error:
        raise VideoReadError(path, f"decord cannot index its frames ({decord_message(error)})") from None
    finally:
        del reader


def scan_video(path: str, source: FrameSize) -> VideoScan:
    """Frames 0 .. n-1 of `path` that read exactly as PyAV presents them, and how clips must read them (see the
    module docstring). `source`: the upright size. Raises VideoReadError when no frame does."""
    size = scan_size(source)
    facts = _reader_facts(path, size)
    keys = _seek_check_keys(facts.keys, facts.length) if facts.timestamps_seek else []
    found = _match_in_order(path, size, {f for k in keys for f in (k, k + 1)})
    if found.first_failure is not None:  # damaged: decord's read-ahead fails at random near it, PyAV never does
        if found.first_failure == 0:
            raise VideoReadError(path, "damaged: PyAV cannot decode its first packet. Fix: re-download or re-encode it")
        return VideoScan(found.first_failure, facts.fps, "pyav", found.reference, found.matched)
    if found.matched == 0:
        raise VideoReadError(path, f"no frame decodes: PyAV presents {found.reference} frames, decord delivers none "
                                   "of them. Fix: re-encode it, e.g. ffmpeg -i IN -c:v libx264 OUT.mp4")
    keys = [k for k in keys if k + 1 < found.matched]
    seeks = facts.timestamps_seek and all(
        _reads_back(path, [k, k + 1], size, "seek", found.kept_pictures) for k in keys)
    mode = "seek" if seeks else "in_order"
    for kept in range(found.matched, max(0, found.matched - MAX_TAIL_STEPS - 1), -1):
        if kept > 0 and _reads_back(path, [kept - 1], size, mode, found.kept_pictures):
            return VideoScan(kept, facts.fps, mode, found.reference, found.matched)
    raise VideoReadError(path, f"frames 0..{found.matched - 1} decode in order, but reading frame "
                               f"{found.matched - 1} or any of the {MAX_TAIL_STEPS} before it as a clip fails. "
                               "Fix: re-encode it")
