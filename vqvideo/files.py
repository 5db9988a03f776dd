"""Atomic file writes and checksums, used by every file vqvideo writes (cache, index, videos, predictions).

A file appears under its final name only once it is complete: it is written to a temporary name in the same
directory, flushed to disk, then renamed with `os.replace` (atomic on POSIX). A run killed with `kill -9`
therefore leaves complete files plus `.<name>.<pid>.tmp` leftovers, never a truncated file under a real name;
the code cache deletes its leftovers on restart.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any, Callable

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
