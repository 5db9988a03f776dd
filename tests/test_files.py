"""Atomic writes: a file is either absent, the old content, or complete; never half-written."""

import os
import stat

import pytest

from vqvideo.files import atomic_write, atomic_write_bytes, atomic_write_json, read_json


def test_failed_write_keeps_old_content_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.bin"
    atomic_write_bytes(target, b"complete")

    def crash(temp):
        temp.write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, crash)
    assert target.read_bytes() == b"complete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_written_files_get_the_umask_mode_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write_json(tmp_path / "a" / "x.json", {"b": 1, "a": 2})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert read_json(path) == {"a": 2, "b": 1}
    assert path.read_text().index('"a"') < path.read_text().index('"b"')


def test_unsorted_json_keeps_order(tmp_path):
    path = atomic_write_json(tmp_path / "t.json", {"vqvae": 1, "predict": 2}, sort_keys=False)
    assert list(read_json(path)) == ["vqvae", "predict"]


def test_disk_full_becomes_one_message_and_other_errors_pass_through(tmp_path):
    import errno

    import pytest

    from vqvideo.files import DiskFullError, explain_disk_full

    with pytest.raises(DiskFullError) as caught:
        with explain_disk_full(tmp_path / "out", 3.5e9, "the predictions"):
            raise OSError(errno.ENOSPC, "No space left on device")
    message = str(caught.value)
    assert f"of {tmp_path / 'out'} while writing the predictions (about 3.5 GB needed" in message
    assert "free" in message and "run the same command again" in message
    with pytest.raises(PermissionError):
        with explain_disk_full(tmp_path, 1, "x"):
            raise PermissionError(errno.EACCES, "denied")
