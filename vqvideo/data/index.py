"""The dataset index: every candidate video probed once (frame count, fps, size, readable or why not).

One decoder decides: a file is probed with the reader that training, caching and prediction use (decord,
through `vqvideo.data.scan.scan_video`, a fresh reader in the calling process, never kept), so "readable"
means readable at training time. The probe decodes every frame at 64 px with decord and with PyAV and keeps the
frames 0 .. `num_frames - 1` that decord reads exactly as FFmpeg presents them (after the edit list; frame i is
PyAV's i-th frame), checked the way clips read them; `decoded_frames` is what PyAV presents and `header_frames`
what the container header claims (both only reported). A stream-copy cut, a damaged tail or a lying header keeps
its decodable frames; a file where none decode is unreadable with the reason. This costs two decodes of each file
at 64 px, once: a Kinetics scan opens ~400k files, so the index is cached as JSON under `cache_dir` (default
`data/index/`), one file per (root, source, split rule), written every SAVE_SECONDS while probing so a killed probe
resumes where it stopped. Its fingerprint is a sha256 of the root, the split rule and every file's (relative path,
size, mtime): when a file changes, only the changed files are probed again. An index written by another probe
(INDEX_VERSION) or another decord version is probed again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NamedTuple

from vqvideo.data.sources import SourceFile, list_source
from vqvideo.data.scan import scan_video
from vqvideo.data.video import (FrameSize, KnownSource, VideoReadError, decoder_version, display_rotation,
                                displayed_size)
from vqvideo.files import atomic_write_json

INDEX_VERSION = 3  # 1: PyAV packet counts; 2: frames decord decodes; 3: frames decord reads as PyAV presents them
SAVE_SECONDS = 20.0  # a probe in progress saves its finished rows this often


@dataclass(frozen=True)
class VideoEntry:
    """One probed video. `num_frames`, `fps`, `height`, `width` are 0 when `readable` is False."""

    path: str  # absolute
    rel_path: str
    num_frames: int  # frames kept: 0 .. num_frames - 1 read exactly as FFmpeg presents them
    fps: float
    height: int
    width: int
    readable: bool
    reason: str  # why not readable; "" when readable
    label: str | None
    split: str  # train | val | test | temporal (both, cut in time)
    header_frames: int = 0  # what the container header claims (0: it does not say)
    decoded_frames: int = 0  # what PyAV presents (decodes after the edit list)
    read_mode: str = "seek"  # how clips must be decoded (`vqvideo.data.video.READ_MODES`; pass to read_clip)

    @property
    def header_overstates(self) -> bool:
        """The header promises more frames than decode (a cut file whose header was written whole)."""
        return self.readable and self.header_frames > self.num_frames

    @property
    def source(self) -> KnownSource:
        """Size and read mode, for `read_clip`."""
        return KnownSource(self.height, self.width, self.read_mode)

    @property
    def frames_lost(self) -> int:
        """Frames PyAV presents past the kept ones (a damaged end, less the read-ahead margin)."""
        return max(0, self.decoded_frames - self.num_frames) if self.readable else 0


@dataclass
class VideoIndex:
    entries: list[VideoEntry]
    fingerprint: str  # sha256 hex of root, split rule and file stats (the code cache's manifest records it)
    label_names: list[str]  # sorted; a label's id is its position
    cache_path: str | None = None

    def read_modes(self) -> dict[str, str]:
        """Video path -> read mode, for the videos that decord must not seek in (see `scan_video`)."""
        return {entry.path: entry.read_mode for entry in self.entries if entry.readable and entry.read_mode != "seek"}

    def label_id(self, label: str | None) -> int:
        """Integer id of a label name; -1 for None (no label)."""
        return -1 if label is None else self.label_names.index(label)


@dataclass(frozen=True)
class Probe:
    num_frames: int = 0
    fps: float = 0.0
    height: int = 0
    width: int = 0
    readable: bool = False
    reason: str = ""
    header_frames: int = 0
    decoded_frames: int = 0
    read_mode: str = "seek"


class Header(NamedTuple):
    """What a container header claims (PyAV; the first frame only for its display matrix): reported beside what
    decodes, never trusted."""

    frames: int  # 0: not stated
    fps: float
    size: FrameSize  # upright (a quarter-turned phone video has its sides swapped)
    rotation: int  # degrees, PyAV's VideoFrame.rotation


def read_header(path: str) -> Header | None:
    """The first video stream's header facts, or None if PyAV finds no video stream."""
    import av

    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0.0)
            rotation = display_rotation(container, stream)
            return Header(max(0, stream.frames), fps, displayed_size(stream, rotation), rotation)
    except (av.FFmpegError, IndexError, OSError, ValueError, UnicodeDecodeError):
        return None


def probe_video(path: str) -> Probe:
    """The frames of `path` that decord reads as PyAV presents them (see `scan_video`); the header for its claims."""
    if os.path.getsize(path) == 0:
        return Probe(reason="empty file (0 bytes)")
    header = read_header(path)
    if header is None or min(header.size) <= 0:
        return Probe(reason="not a readable video (no video stream with a frame size in its header)")
    try:
        scan = scan_video(path, header.size)
    except VideoReadError as error:
        return Probe(reason=error.reason, header_frames=header.frames)
    fps = scan.fps if scan.fps > 0 else header.fps
    return Probe(scan.num_frames, fps, header.size.height, header.size.width, True, "", header.frames,
                 scan.reference_frames, scan.read_mode)


def probe_videos(paths: list[str], progress: bool = True, num_workers: int = 0) -> Iterator[Probe]:
    """`probe_video` of each path, yielded in order as they finish, with a progress bar; in a process pool if
    num_workers > 0."""
    from tqdm.auto import tqdm

    bar = {"total": len(paths), "desc": "indexing videos", "unit": "video", "disable": not progress or not paths}
    if num_workers <= 0 or len(paths) < 2:
        yield from (probe_video(path) for path in tqdm(paths, **bar))
        return
    with ProcessPoolExecutor(max_workers=num_workers) as pool:
        yield from tqdm(pool.map(probe_video, paths, chunksize=max(1, min(16, len(paths) // num_workers))), **bar)


def _stat_key(path: str) -> list[int]:
    stat = os.stat(path)
    return [stat.st_size, stat.st_mtime_ns]


def _cache_file(cache_dir: str, identity: dict) -> Path:
    name = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]
    return Path(cache_dir) / f"index-{name}.json"


def _load_cached_rows(cache_path: Path) -> tuple[str | None, dict[str, dict]]:
    """(fingerprint, rows by path) of a previous index file, or (None, {}) if absent or unreadable."""
    try:
        payload = json.loads(cache_path.read_text())
    except (OSError, ValueError):
        return None, {}
    if payload.get("version") != INDEX_VERSION or payload.get("decoder") != decoder_version():
        return None, {}
    return payload.get("fingerprint"), {row["path"]: row for row in payload.get("rows", [])}


def build_index(root: str | None = None, source: str = "auto", val_fraction: float = 0.2,
                cache_dir: str | None = "data/index", progress: bool = True, num_workers: int = 0,
                save_seconds: float = SAVE_SECONDS) -> VideoIndex:
    """Probe every video of a source once; reuse the cached index when no file changed.

    `root=None` is the embedded clips. `cache_dir=None` disables the cache. A progress bar (tqdm) shows
    the files being probed, by `num_workers` processes (0: in this process); the rows finished so far are saved
    every `save_seconds`, so a killed probe resumes where it stopped.
    """
    files = list_source(root, source, val_fraction)
    identity = {"root": str(Path(root).resolve()) if root else "<embedded>", "source": source,
                "val_fraction": val_fraction, "version": INDEX_VERSION}
    stats = {file.path: _stat_key(file.path) for file in files}
    fingerprint_input = [identity] + [[f.rel_path, f.split, f.label, *stats[f.path]] for f in files]
    fingerprint = hashlib.sha256(json.dumps(fingerprint_input).encode()).hexdigest()
    cache_path = _cache_file(cache_dir, identity) if cache_dir else None
    cached_fingerprint, cached_rows = _load_cached_rows(cache_path) if cache_path else (None, {})
    rows = [_row_for(file, stats[file.path], cached_rows) for file in files]
    to_probe = [i for i, row in enumerate(rows) if row is None]
    saved = time.monotonic()
    for i, probe in zip(to_probe, probe_videos([files[i].path for i in to_probe], progress, num_workers)):
        rows[i] = {**dataclasses.asdict(files[i]), **dataclasses.asdict(probe), "stat": stats[files[i].path]}
        if cache_path and time.monotonic() - saved >= save_seconds:  # a killed probe keeps what it finished
            _save_rows(cache_path, None, [row for row in rows if row is not None])
            saved = time.monotonic()
    if cache_path and cached_fingerprint != fingerprint:
        _save_rows(cache_path, fingerprint, rows)
    entries = [VideoEntry(**{field.name: row[field.name] for field in dataclasses.fields(VideoEntry)})
               for row in rows]
    label_names = sorted({entry.label for entry in entries if entry.label is not None})
    return VideoIndex(entries, fingerprint, label_names, str(cache_path) if cache_path else None)


def _save_rows(cache_path: Path, fingerprint: str | None, rows: list[dict]) -> None:
    """Write the index (fingerprint None: a probe in progress, its finished rows only)."""
    atomic_write_json(cache_path, {"version": INDEX_VERSION, "decoder": decoder_version(),
                                   "fingerprint": fingerprint, "rows": rows})


def _row_for(file: SourceFile, stat: list[int], cached_rows: dict[str, dict]) -> dict | None:
    """The cached row of an unchanged file (its label and split refreshed from the source), else None."""
    row = cached_rows.get(file.path)
    if row is None or row.get("stat") != stat:
        return None
    return {**row, "rel_path": file.rel_path, "label": file.label, "split": file.split}
