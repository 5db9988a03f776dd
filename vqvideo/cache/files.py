"""Atomic file writes and checksums for the code cache.

Every file of a cache appears under its final name only once it is complete: it is written to a temporary
name in the same directory, flushed to disk, then renamed with `os.replace` (atomic on POSIX). A run killed
with `kill -9` therefore leaves complete files plus `*.tmp` leftovers, never a truncated file under a real
name; the leftovers are deleted on restart.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

TEMP_SUFFIX = ".tmp"
_HASH_CHUNK_BYTES = 8 << 20


def _temp_path(path: Path) -> Path:
    # pid in the name: two ranks never share a temp file, even for the same target
    return path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` via a temp file + fsync + `os.replace`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = _temp_path(path)
    with open(temp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)


def atomic_write_json(path: str | Path, payload: Any) -> None:
    """JSON with sorted keys, so equal content gives equal bytes."""
    atomic_write_bytes(path, (json.dumps(payload, indent=1, sort_keys=True) + "\n").encode())


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
