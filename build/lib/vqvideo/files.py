"""Atomic file writes, checksums and full-disk messages, for every file vqvideo writes (cache, index, videos, ...).

A file appears under its final name only once it is complete: it is written to a temporary name in the same
directory, flushed to disk, then renamed with `os.replace` (atomic on POSIX). A run killed with `kill -9`
therefore leaves complete files plus `.<name>.<pid>.tmp` leftovers, never a truncated file under a real name;
the code cache deletes its leftovers on restart.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

TEMP_SUFFIX = ".tmp"
_HASH_CHUNK_BYTES = 8 << 20


def _temp_path(path: Path) -> Path:
    # pid in the name: two ranks never share a temp file, even for the same target
    return path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(temp_path)`, fsync, then rename onto `path`; the temp file is removed if `write` fails.

    `write` must not rely on the temp name's suffix (pass formats explicitly)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = _temp_path(path)
    try:
        write(temp)
        with open(temp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(temp, _default_mode())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` via a temp file + fsync + `os.replace`."""
    return atomic_write(path, lambda temp: temp.write_bytes(data))


def atomic_write_json(path: str | Path, payload: Any, sort_keys: bool = True) -> Path:
    """JSON, by default with sorted keys so equal content gives equal bytes (keep order where it means something)."""
    return atomic_write_bytes(path, (json.dumps(payload, indent=1, sort_keys=sort_keys) + "\n").encode())


def atomic_write_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """`np.savez` of `arrays` via a temp file + fsync + `os.replace`: never a truncated .npz."""

    def write(temp: Path) -> None:
        with open(temp, "wb") as handle:
            np.savez(handle, **arrays)

    return atomic_write(path, write)


def npy_bytes(array: np.ndarray) -> bytes:
    """The exact bytes `np.save` writes for `array` (a memory-mappable .npy)."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def bytes_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 hex digest of a file, read in 8 MiB chunks (shards can be hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def read_json(path: str | Path) -> Any:
    """Parsed JSON, or a ValueError naming the file when it is not valid JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); delete it, or rebuild the cache with --overwrite") from err


class DiskFullError(OSError):
    """A write failed for lack of space; the message names the directory, the space needed and the fix."""

    def __str__(self) -> str:
        return self.strerror


def human_bytes(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def free_bytes(directory: str | Path) -> int:
    """Free space of the filesystem holding `directory` (or its nearest existing parent)."""
    path = Path(directory).resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


@contextmanager
def explain_disk_full(directory: str | Path, needed_bytes: float | None, what: str,
                      rerun: str = "run the same command again") -> Iterator[None]:
    """Turn "No space left on device" raised inside the block into one `DiskFullError` naming `directory`, roughly
    how much `what` needs (`needed_bytes`, an estimate), how much is free, and what to run after freeing space."""
    try:
        yield
    except OSError as error:
        if error.errno != errno.ENOSPC or isinstance(error, DiskFullError):
            raise
        needed = f"about {human_bytes(needed_bytes)} needed" if needed_bytes else "more space needed"
        raise DiskFullError(
            errno.ENOSPC,
            f"no space left on the device of {directory} while writing {what} ({needed}, "
            f"{human_bytes(free_bytes(directory))} free): free space there, or choose another output folder, then "
            f"{rerun}",
        ) from error
