"""`vqvideo human-eval make-pairs`: two systems' videos of the same conditioning clips, as a blinded pair set.

A side is either a `vqvideo eval` output folder (`report.json` + `videos/<system>/<clip>.mp4`; the system is
`sample_0` unless `--a_system`/`--b_system` names another, e.g. `copy_last`) or a plain folder of `<clip>.mp4`.
Videos pair by identical file stem; a pair whose decoded frame count or resolution differs is refused (that
would be a visible tell, not a preference), stems found on one side only are reported.

The pair set is a folder: `manifest.json` (the only place that names the systems) and `videos/<sha256>.mp4`,
each video copied under the first 16 hex digits of its content hash, so nothing a rater's browser sees
(URL, file name) says which system made it. `pair_set_id` hashes the names and every pair's files: the
judgment database is bound to it, and the per-rater randomisation is seeded by it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from vqvideo.files import atomic_write, atomic_write_json, file_sha256, read_json

MANIFEST_NAME = "manifest.json"
VIDEOS_DIR = "videos"
EVAL_REPORT = "report.json"
EVAL_DEFAULT_SYSTEM = "sample_0"
PAIR_SET_FORMAT = "vqvideo-human-eval-pairs"
PAIR_SET_VERSION = 1


class PairsError(ValueError):
    """Bad input to make-pairs or an unreadable pair set; the message names the file and the fix."""


@dataclass(frozen=True)
class VideoInfo:
    """What must match between the two videos of a pair: decoded frame count and resolution."""

    path: Path
    num_frames: int
    width: int
    height: int


@dataclass(frozen=True)
class Pair:
    """One comparison: `a` and `b` are file paths relative to the pair set (`videos/<hash>.mp4`)."""

    pair_id: str
    a: str
    b: str


@dataclass(frozen=True)
class PairSet:
    """A pair set as the server and the report use it (read back from its manifest)."""

    root: Path
    pair_set_id: str
    names: tuple[str, str]
    pairs: tuple[Pair, ...]

    @cached_property
    def _by_id(self) -> dict[str, Pair]:
        return {pair.pair_id: pair for pair in self.pairs}

    def pair(self, pair_id: str) -> Pair | None:
        return self._by_id.get(pair_id)

    @cached_property
    def video_names(self) -> frozenset[str]:
        """Basenames of every video file the manifest lists (the only files the server may send)."""
        return frozenset(Path(rel).name for pair in self.pairs for rel in (pair.a, pair.b))


@dataclass(frozen=True)
class Matching:
    pairs: list[tuple[str, VideoInfo, VideoInfo]]
    only_a: list[str]
    only_b: list[str]


def is_eval_folder(folder: Path) -> bool:
    return (folder / EVAL_REPORT).is_file() and (folder / VIDEOS_DIR).is_dir()


def system_folder(folder: str | Path, system: str | None, flag: str) -> Path:
    """The folder of MP4s one side means: `videos/<system>` of an eval folder, or `folder` itself."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PairsError(f"--{flag} {folder}: no such folder; pass a `vqvideo eval` output folder or a folder of MP4s")
    if not is_eval_folder(folder):
        if system is not None:
            raise PairsError(f"--{flag}_system {system}: {folder} is not a `vqvideo eval` folder (no {EVAL_REPORT} "
                             f"and {VIDEOS_DIR}/); drop --{flag}_system to use its MP4 files directly")
        return folder
    chosen = folder / VIDEOS_DIR / (system or EVAL_DEFAULT_SYSTEM)
    if not chosen.is_dir():
        systems = sorted(path.name for path in (folder / VIDEOS_DIR).iterdir() if path.is_dir())
        raise PairsError(f"{chosen}: no such system in this eval folder; pass --{flag}_system with one of {systems}")
    return chosen


def list_videos(folder: Path) -> dict[str, Path]:
    """`<stem>: path` of the folder's MP4 files (not recursive; hidden and temporary files skipped)."""
    return {path.stem: path for path in sorted(folder.iterdir())
            if path.is_file() and path.suffix.lower() == ".mp4" and not path.name.startswith(".")}


def probe_video(path: Path) -> VideoInfo:
    """Frame count by decoding every frame (container headers can promise frames a file lacks) and size."""
    import av  # PyAV: core dependency, imported here so the server and report never load FFmpeg

    try:
        with av.open(str(path)) as container:
            width = height = num_frames = 0
            for frame in container.decode(video=0):
                width, height = frame.width, frame.height
                num_frames += 1
    except (av.FFmpegError, IndexError, ValueError) as err:
        raise PairsError(f"{path}: not a readable video ({err}); re-create it or remove it from the folder") from err
    if num_frames == 0:
        raise PairsError(f"{path}: no decodable frames; re-create it or remove it from the folder")
    return VideoInfo(path, num_frames, width, height)


def _describe(info: VideoInfo) -> str:
    return f"{info.path} ({info.num_frames} frames, {info.width}x{info.height})"


def match_videos(a_videos: dict[str, Path], b_videos: dict[str, Path], progress: bool = True) -> Matching:
    """Probe and pair videos by stem; every mismatch is listed in one PairsError naming both files."""
    from tqdm.auto import tqdm

    common = sorted(a_videos.keys() & b_videos.keys())
    pairs, mismatches = [], []
    for stem in tqdm(common, desc="probing pairs", unit="pair", disable=not progress):
        a_info, b_info = probe_video(a_videos[stem]), probe_video(b_videos[stem])
        if (a_info.num_frames, a_info.width, a_info.height) != (b_info.num_frames, b_info.width, b_info.height):
            mismatches.append(f"  {_describe(a_info)} vs {_describe(b_info)}")
        pairs.append((stem, a_info, b_info))
    if mismatches:
        raise PairsError("these pairs differ in frame count or resolution, so raters could tell the systems apart "
                         "by that alone; re-make the videos at one length and size:\n" + "\n".join(mismatches))
    return Matching(pairs, sorted(a_videos.keys() - b_videos.keys()), sorted(b_videos.keys() - a_videos.keys()))


def parse_names(names: str | None, a_label: str, b_label: str) -> tuple[str, str]:
    """`"A,B"` -> ("A", "B"); without --names, the two sides' folder labels."""
    parts = [part.strip() for part in names.split(",")] if names else [a_label, b_label]
    if len(parts) != 2 or not all(parts) or parts[0] == parts[1]:
        raise PairsError(f"--names {names!r}: give two different, non-empty names separated by one comma, "
                         "e.g. --names vqvideo,copy-last-frame")
    return parts[0], parts[1]


def side_label(folder: str | Path, system: str | None) -> str:
    folder = Path(folder)
    return f"{folder.name}/{system or EVAL_DEFAULT_SYSTEM}" if is_eval_folder(folder) else folder.name


def pair_set_id(names: tuple[str, str], pairs: list[Pair]) -> str:
    canonical = json.dumps({"names": list(names), "pairs": [[p.pair_id, p.a, p.b] for p in pairs]}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _opaque_name(source: Path) -> str:
    """The video's path inside the pair set: its content hash says nothing about the system that made it."""
    return f"{VIDEOS_DIR}/{file_sha256(source)[:16]}.mp4"


def _copy_video(source: Path, out: Path, rel: str) -> None:
    if not (out / rel).is_file():
        atomic_write(out / rel, lambda temp: shutil.copyfile(source, temp))


def _check_out(out: Path, new_id: str, overwrite: bool) -> bool:
    """True when `out` already holds exactly this pair set; refuses to replace another one silently."""
    manifest = out / MANIFEST_NAME
    if manifest.is_file():
        old_id = read_json(manifest).get("pair_set_id")
        if old_id == new_id or overwrite:
            return old_id == new_id
        raise PairsError(f"{out} already holds another pair set ({old_id}); judgments collected for it would no "
                         "longer match its videos. Choose another --out, or pass --overwrite to replace it")
    if out.is_dir() and any(out.iterdir()):
        raise PairsError(f"--out {out}: folder is not empty and holds no {MANIFEST_NAME}; choose a new folder")
    return False


@dataclass(frozen=True)
class MakePairsResult:
    out: Path
    pair_set_id: str
    num_pairs: int
    only_a: list[str]
    only_b: list[str]
    unchanged: bool


def make_pairs(a: str | Path, b: str | Path, out: str | Path, names: str | None = None, a_system: str | None = None,
               b_system: str | None = None, overwrite: bool = False, progress: bool = True) -> MakePairsResult:
    """Pair the videos of sides a and b by stem, copy them into `out` under opaque names, write the manifest."""
    a_folder, b_folder = system_folder(a, a_system, "a"), system_folder(b, b_system, "b")
    system_names = parse_names(names, side_label(a, a_system), side_label(b, b_system))
    matching = match_videos(list_videos(a_folder), list_videos(b_folder), progress)
    if not matching.pairs:
        raise PairsError(f"no file stem is in both {a_folder} and {b_folder}; pairs need the same <clip>.mp4 name "
                         "on both sides (the videos made from the same conditioning frames)")
    out = Path(out)
    pairs = [Pair(stem, _opaque_name(a_info.path), _opaque_name(b_info.path)) for stem, a_info, b_info in matching.pairs]
    new_id = pair_set_id(system_names, pairs)
    unchanged = _check_out(out, new_id, overwrite)
    for pair, (_, a_info, b_info) in zip(pairs, matching.pairs):
        _copy_video(a_info.path, out, pair.a)
        _copy_video(b_info.path, out, pair.b)
    records = [{"pair_id": pair.pair_id, "a": pair.a, "b": pair.b, "a_source": str(a_info.path),
                "b_source": str(b_info.path), "num_frames": a_info.num_frames, "width": a_info.width,
                "height": a_info.height} for pair, (_, a_info, b_info) in zip(pairs, matching.pairs)]
    manifest = {"format": PAIR_SET_FORMAT, "version": PAIR_SET_VERSION, "pair_set_id": new_id,
                "systems": {"a": {"name": system_names[0], "source": str(a_folder)},
                            "b": {"name": system_names[1], "source": str(b_folder)}},
                "pairs": records, "only_in_a": matching.only_a, "only_in_b": matching.only_b}
    atomic_write_json(out / MANIFEST_NAME, manifest)
    _remove_stale_videos(out, {name for pair in pairs for name in (pair.a, pair.b)})
    return MakePairsResult(out, new_id, len(pairs), matching.only_a, matching.only_b, unchanged)


def _remove_stale_videos(out: Path, keep: set[str]) -> None:
    """After --overwrite: videos of the replaced pair set are deleted (the manifest no longer lists them)."""
    for path in (out / VIDEOS_DIR).iterdir():
        if f"{VIDEOS_DIR}/{path.name}" not in keep and path.is_file():
            path.unlink()


def read_pair_set(root: str | Path) -> PairSet:
    """The pair set in folder `root`; a PairsError names what is missing and how to make it."""
    root = Path(root)
    manifest_path = root / MANIFEST_NAME
    if not manifest_path.is_file():
        raise PairsError(f"{manifest_path}: no such file; make the pair set with `vqvideo human-eval make-pairs "
                         f"--a DIR --b DIR --out {root}`")
    manifest = read_json(manifest_path)
    if manifest.get("format") != PAIR_SET_FORMAT or manifest.get("version") != PAIR_SET_VERSION:
        raise PairsError(f"{manifest_path}: not a version-{PAIR_SET_VERSION} human-eval pair set; re-make it")
    names = (manifest["systems"]["a"]["name"], manifest["systems"]["b"]["name"])
    pairs = tuple(Pair(record["pair_id"], record["a"], record["b"]) for record in manifest["pairs"])
    missing = [rel for pair in pairs for rel in (pair.a, pair.b) if not (root / rel).is_file()]
    if missing:
        raise PairsError(f"{root}: {len(missing)} videos listed in {MANIFEST_NAME} are missing (e.g. {missing[0]}); "
                         "re-make the pair set with make-pairs")
    if pair_set_id(names, list(pairs)) != manifest["pair_set_id"]:
        raise PairsError(f"{manifest_path}: pair_set_id does not match its pairs (edited by hand?); re-make it")
    return PairSet(root, manifest["pair_set_id"], names, pairs)
