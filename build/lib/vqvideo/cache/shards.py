"""Shards of the code cache: uint16 `.npy` arrays (memory-mappable), one shard set per rank.

A shard is five files `shards/rank<r>-<seq>.<array>.npy` with the same number of rows (one row = one clip):
top (N, Tt, Ht, Wt), bottom (N, Tb, Hb, Wb), given_top (N, Tc, Ht, Wt), given_bottom (N, Tcb, Hb, Wb) as
uint16, and clip_id (N,) int64. Its files are written atomically, then the shard is recorded with checksums
in `progress/rank-<r>.json` (also atomic). That record is the commit point: on restart, shards not recorded
(a run killed while writing them) are deleted and their clips encoded again.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from vqvideo.files import TEMP_SUFFIX, atomic_write_bytes, atomic_write_json, bytes_sha256, file_sha256
from vqvideo.files import npy_bytes, read_json
from vqvideo.cache.manifest import PROGRESS_DIR, SHARD_ARRAYS, SHARD_DIR, CacheError, ShardRecord

_SHARD_NAME = re.compile(r"^rank(\d+)-(\d+)$")
MAX_CODE = np.iinfo(np.uint16).max


def progress_path(cache_dir: Path, rank: int) -> Path:
    return cache_dir / PROGRESS_DIR / f"rank-{rank}.json"


def _progress_files(cache_dir: Path) -> list[dict]:
    return [read_json(path) for path in sorted((cache_dir / PROGRESS_DIR).glob("rank-*.json"))]


def read_progress(cache_dir: Path) -> list[ShardRecord]:
    """Every shard any rank recorded as complete, ordered by (rank, name)."""
    shards = [ShardRecord.from_dict(raw) for progress in _progress_files(cache_dir) for raw in progress["shards"]]
    return sorted(shards, key=lambda s: (s.rank, s.name))


def read_failures(cache_dir: Path) -> list[dict]:
    """Clips any rank could not read: {"clip_id", "reason"}, ordered by clip id."""
    failed = [record for progress in _progress_files(cache_dir) for record in progress.get("failed", [])]
    return sorted(failed, key=lambda record: record["clip_id"])


def write_progress(cache_dir: Path, rank: int, shards: list[ShardRecord], failed: list[dict]) -> None:
    payload = {"rank": rank, "shards": [s.as_dict() for s in shards], "failed": failed}
    atomic_write_json(progress_path(cache_dir, rank), payload)


def shard_file(cache_dir: Path, shard: ShardRecord, array: str) -> Path:
    return cache_dir / SHARD_DIR / shard.files[array]["file"]


def open_shard(cache_dir: Path, shard: ShardRecord, mmap: bool = True) -> dict[str, np.ndarray]:
    """The shard's arrays, memory-mapped read-only (or loaded into memory with mmap=False)."""
    mode = "r" if mmap else None
    return {array: np.load(shard_file(cache_dir, shard, array), mmap_mode=mode) for array in SHARD_ARRAYS}


def _intact(cache_dir: Path, shard: ShardRecord) -> bool:
    """Cheap check (sizes) used on restart; `verify_shards` re-reads checksums."""
    for array in SHARD_ARRAYS:
        path = shard_file(cache_dir, shard, array)
        if not path.is_file() or path.stat().st_size != shard.files[array]["bytes"]:
            return False
    return True


def prepare_for_resume(cache_dir: Path) -> None:
    """Delete what a killed run left behind: temp files, shard files no progress file records, and records
    of shards whose files are missing or truncated (their clips are then encoded again). Run by rank 0 only,
    while no rank writes (Lightning's setup hook, before its post-setup barrier)."""
    for folder in (cache_dir, cache_dir / PROGRESS_DIR, cache_dir / SHARD_DIR):  # only our own temp names
        for temp in folder.glob(f".*{TEMP_SUFFIX}"):
            temp.unlink(missing_ok=True)
    recorded = set()
    for progress in _progress_files(cache_dir):
        shards = [ShardRecord.from_dict(raw) for raw in progress["shards"]]
        intact = [s for s in shards if _intact(cache_dir, s)]
        if len(intact) != len(shards):
            lost = sorted({s.name for s in shards} - {s.name for s in intact})
            warnings.warn(f"{cache_dir}: shards {lost} are recorded but missing or truncated; re-encoding their clips")
            write_progress(cache_dir, progress["rank"], intact, progress.get("failed", []))
        recorded |= {f["file"] for s in intact for f in s.files.values()}
    for path in (cache_dir / SHARD_DIR).glob("*.npy"):
        if path.name not in recorded:
            path.unlink()


def done_clip_ids(cache_dir: Path) -> set[int]:
    """Clip ids held by shards recorded as complete (read from their clip_id arrays), or recorded unreadable."""
    done = {int(record["clip_id"]) for record in read_failures(cache_dir)}
    for shard in read_progress(cache_dir):
        done.update(int(i) for i in np.load(shard_file(cache_dir, shard, "clip_id")))
    return done


def verify_shards(cache_dir: Path, shards: list[ShardRecord]) -> list[str]:
    """Re-hash every file of every shard; one message per problem (empty list = all intact)."""
    problems = []
    for shard in shards:
        for array in SHARD_ARRAYS:
            path = shard_file(cache_dir, shard, array)
            if not path.is_file():
                problems.append(f"shard {shard.name}: {path} is missing")
            elif file_sha256(path) != shard.files[array]["sha256"]:
                problems.append(f"shard {shard.name}: {path} does not match its sha256 (corrupted or modified)")
    return problems


class RankShardWriter:
    """Buffers one rank's code rows and writes a shard each time `rows_per_shard` rows are in.

    Rows are numpy arrays keyed by SHARD_ARRAYS (codes as uint16, clip_id int64), batch dimension first.
    """

    def __init__(self, cache_dir: Path, rank: int, rows_per_shard: int) -> None:
        if rows_per_shard < 1:
            raise ValueError(f"rows_per_shard must be >= 1, got {rows_per_shard}")
        self.cache_dir, self.rank, self.rows_per_shard = Path(cache_dir), rank, rows_per_shard
        progress = progress_path(self.cache_dir, rank)
        recorded = read_json(progress) if progress.is_file() else {"shards": [], "failed": []}
        self.shards = [ShardRecord.from_dict(raw) for raw in recorded["shards"]]
        self.failed: list[dict] = recorded.get("failed", [])
        self.next_seq = 1 + max((int(_SHARD_NAME.match(s.name).group(2)) for s in self.shards), default=-1)
        self._pending: list[dict[str, np.ndarray]] = []
        self._pending_rows = 0

    def add(self, rows: dict[str, np.ndarray]) -> None:
        self._pending.append(rows)
        self._pending_rows += len(rows["clip_id"])
        while self._pending_rows >= self.rows_per_shard:
            self._write_shard(self.rows_per_shard)

    def record_failures(self, failed: list[dict]) -> None:
        """Clips that could not be read ({"clip_id", "reason"}), committed at once: reading them fails the same
        way every time, so a restart must not retry them forever, and the content stays that of one run."""
        self.failed.extend(failed)
        write_progress(self.cache_dir, self.rank, self.shards, self.failed)

    def flush(self) -> None:
        """Write the remaining rows (the last, smaller shard of this rank)."""
        if self._pending_rows:
            self._write_shard(self._pending_rows)

    def _write_shard(self, num_rows: int) -> None:
        joined = {a: np.concatenate([p[a] for p in self._pending]) for a in SHARD_ARRAYS}
        rest = {a: v[num_rows:] for a, v in joined.items()}
        self._pending, self._pending_rows = ([rest] if len(rest["clip_id"]) else []), len(rest["clip_id"])
        name = f"rank{self.rank}-{self.next_seq:05d}"
        files = {}
        for array in SHARD_ARRAYS:
            data = npy_bytes(joined[array][:num_rows])
            file_name = f"{name}.{array}.npy"
            atomic_write_bytes(self.cache_dir / SHARD_DIR / file_name, data)
            files[array] = {"file": file_name, "sha256": bytes_sha256(data), "bytes": len(data)}
        self.shards.append(ShardRecord(name=name, rank=self.rank, rows=num_rows, files=files))
        write_progress(self.cache_dir, self.rank, self.shards, self.failed)  # the commit point of this shard
        self.next_seq += 1


def codes_to_uint16(codes: np.ndarray, what: str) -> np.ndarray:
    """int codes → uint16 for disk, refusing codebooks that do not fit."""
    if codes.size and (codes.min() < 0 or codes.max() > MAX_CODE):
        raise CacheError(f"{what} codes outside [0, {MAX_CODE}] cannot be stored as uint16")
    return codes.astype(np.uint16)
