"""The dataset index: every candidate video probed once (frame count, fps, size, readable or why not).

One decoder decides: a file is probed with the reader that training, caching and prediction use (decord,
through `vqvideo.data.video.scan_video`, a fresh reader in the calling process, never kept), so "readable"
means readable at training time. The probe decodes every frame once, in order: `num_frames` counts the
frames decord delivers (the first is frame 0, the last `num_frames - 1`), whatever the container header
claims (`header_frames`, read with PyAV, is only reported). A file decord cannot open, or fails or repeats a
frame in, is unreadable with the reason. This costs one decode of each file (about 0.2 s for a 10 s 340x256
clip), once: a Kinetics scan opens ~400k files, so the index is cached as JSON under `cache_dir` (default
`data/index/`), one file per (root, source, split rule). Its fingerprint is a sha256 of the root, the split
rule and every file's (relative path, size, mtime): when a file changes, only the changed files are probed
again. An index written by another probe (INDEX_VERSION) or another decord version is probed again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from vqvideo.data.sources import SourceFile, list_source
from vqvideo.data.video import FrameSize, VideoReadError, decoder_version, scan_video
from vqvideo.files import atomic_write_json

INDEX_VERSION = 2  # 1: PyAV packet counts; 2: frames decord decodes


@dataclass(frozen=True)
class VideoEntry:
    """One probed video. `num_frames`, `fps`, `height`, `width` are 0 when `readable` is False."""

    path: str  # absolute
    rel_path: str
    num_frames: int  # frames decord decodes: 0 .. num_frames - 1
    fps: float
    height: int
    width: int
    readable: bool
    reason: str  # why not readable; "" when readable
    label: str | None
    split: str  # train | val | test | temporal (both, cut in time)
    header_frames: int = 0  # what the container header claims (0: it does not say)

    @property
    def header_overstates(self) -> bool:
        """The header promises more frames than decode (a cut file whose header was written whole)."""
        return self.readable and self.header_frames > self.num_frames


@dataclass
class VideoIndex:
    entries: list[VideoEntry]
    fingerprint: str  # sha256 hex of root, split rule and file stats (the code cache's manifest records it)
    label_names: list[str]  # sorted; a label's id is its position
    cache_path: str | None = None

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


class Header(NamedTuple):
    """What a container header claims (PyAV, no decoding): reported beside what decodes, never trusted."""

    frames: int  # 0: not stated
    fps: float
    size: FrameSize


def read_header(path: str) -> Header | None:
    """The first video stream's header facts, or None if PyAV finds no video stream."""
    import av

    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0.0)
            size = FrameSize(stream.codec_context.height, stream.codec_context.width)
            return Header(max(0, stream.frames), fps, size)
    except (av.FFmpegError, IndexError, OSError, ValueError, UnicodeDecodeError):
        return None


def probe_video(path: str) -> Probe:
    """Decode every frame of `path` with decord (see `scan_video`); the header only for its claims."""
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
    return Probe(scan.num_frames, fps, header.size.height, header.size.width, True, "", header.frames)


def probe_videos(paths: list[str], progress: bool = True, num_workers: int = 0) -> list[Probe]:
    """`probe_video` of each path, in order, with a progress bar; in a process pool if num_workers > 0."""
    from tqdm.auto import tqdm

    bar = {"total": len(paths), "desc": "indexing videos", "unit": "video", "disable": not progress or not paths}
    if num_workers <= 0 or len(paths) < 2:
        return [probe_video(path) for path in tqdm(paths, **bar)]
    with ProcessPoolExecutor(max_workers=num_workers) as pool:
        return list(tqdm(pool.map(probe_video, paths, chunksize=max(1, min(64, len(paths) // num_workers))), **bar))


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
                cache_dir: str | None = "data/index", progress: bool = True, num_workers: int = 0) -> VideoIndex:
    """Probe every video of a source once; reuse the cached index when no file changed.

    `root=None` is the embedded clips. `cache_dir=None` disables the cache. A progress bar (tqdm) shows
    the files being probed, by `num_workers` processes (0: in this process).
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
    probes = probe_videos([files[i].path for i in to_probe], progress, num_workers)
    for i, probe in zip(to_probe, probes):
        rows[i] = {**dataclasses.asdict(files[i]), **dataclasses.asdict(probe), "stat": stats[files[i].path]}
    if cache_path and cached_fingerprint != fingerprint:
        atomic_write_json(cache_path, {"version": INDEX_VERSION, "decoder": decoder_version(),
                                       "fingerprint": fingerprint, "rows": rows})
    entries = [VideoEntry(**{field.name: row[field.name] for field in dataclasses.fields(VideoEntry)})
               for row in rows]
    label_names = sorted({entry.label for entry in entries if entry.label is not None})
    return VideoIndex(entries, fingerprint, label_names, str(cache_path) if cache_path else None)


def _row_for(file: SourceFile, stat: list[int], cached_rows: dict[str, dict]) -> dict | None:
    """The cached row of an unchanged file (its label and split refreshed from the source), else None."""
    row = cached_rows.get(file.path)
    if row is None or row.get("stat") != stat:
        return None
    return {**row, "rel_path": file.rel_path, "label": file.label, "split": file.split}
