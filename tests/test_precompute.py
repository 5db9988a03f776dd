"""`vqvideo precompute` on the bundled clips with a tiny VQ-VAE checkpoint: codes, manifest, refusal of a
cache built by another VQ-VAE, `--verify`, and kill-and-resume giving exactly the uninterrupted content."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from cache_helpers import assert_codes_match_vqvae, assert_same_content, cache_content, precompute_args
from cache_helpers import save_tiny_vqvae

from vqvideo.cache.dataset import CodesDataModule
from vqvideo.cache.manifest import FORMAT_VERSION, SHARD_ARRAYS, read_manifest
from vqvideo.cache.shards import read_progress, shard_file
from vqvideo.callbacks.code_cache import CodeCacheWriter
from vqvideo.commands import precompute
from vqvideo.data import fixed_clips
from vqvideo.data.index import build_index
from vqvideo.data.video import VideoReadError
from vqvideo.files import TEMP_SUFFIX, file_sha256
from vqvideo.lit.checkpoints import read_checkpoint


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(workspace, checkpoint, args of the uninterrupted cache in workspace / 'codes')."""
    root = tmp_path_factory.mktemp("cache")
    checkpoint = save_tiny_vqvae(root / "vqvae.ckpt")
    args = precompute_args(checkpoint, root / "codes", root / "index")
    assert precompute.main(args) == 0
    return root, checkpoint, args


def test_deterministic_encoding_does_not_stay_switched_on_in_the_caller(tmp_path):
    """precompute runs with deterministic kernels (its default) and gives the process its torch flags back."""
    import torch

    assert precompute.build_parser().get_defaults().trainer.deterministic is True
    checkpoint = save_tiny_vqvae(tmp_path / "vqvae.ckpt")
    torch.use_deterministic_algorithms(False)
    args = precompute_args(checkpoint, tmp_path / "codes", tmp_path / "index")
    assert precompute.main([*args, "--splits=[val]"]) == 0
    assert not torch.are_deterministic_algorithms_enabled()


def _copy_cache(root, name):
    shutil.copytree(root / "codes", root / name)
    return root / name


def test_codes_equal_vqvae_encode_of_the_same_clips(built):
    root, checkpoint, _ = built
    assert_codes_match_vqvae(root / "codes", checkpoint)
    content = cache_content(root / "codes")
    flipped = [c for c, (record, _) in content.items() if record["flip"]]
    assert flipped and all(content[c][0]["split"] == "train" for c in flipped)
    twin = next(c for c, (r, _) in content.items() if not r["flip"] and r["start_frame"] == content[flipped[0]][0]
                ["start_frame"] and r["rel_path"] == content[flipped[0]][0]["rel_path"] and r["split"] == "train")
    assert not np.array_equal(content[twin][1]["bottom"], content[flipped[0]][1]["bottom"])


def test_manifest_records_checkpoint_index_shapes_and_checksums(built):
    root, checkpoint, _ = built
    manifest = read_manifest(root / "codes")
    assert manifest.format_version == FORMAT_VERSION
    assert manifest.identity.vqvae_sha256 == file_sha256(checkpoint)
    assert manifest.identity.vqvae_hparams == json.loads(json.dumps(read_checkpoint(checkpoint)["hyper_parameters"]))
    assert manifest.identity.index_fingerprint == build_index(None, cache_dir=str(root / "index")).fingerprint
    spec = manifest.code_spec
    assert (spec.top_shape, spec.bottom_shape) == ((2, 4, 4), (4, 8, 8))
    assert (spec.given_top_shape, spec.given_bottom_shape, spec.num_given_frames) == ((1, 4, 4), (2, 8, 8), 4)
    assert (spec.num_top_codes, spec.num_bottom_codes) == (16, 16)
    assert {c.split for c in manifest.clips} == {"train", "val"} and len(manifest.clips) == 9
    assert [s.rows for s in manifest.shards] == [4, 4, 1]
    for shard in manifest.shards:
        for array in SHARD_ARRAYS:
            path = shard_file(root / "codes", shard, array)
            assert file_sha256(path) == shard.files[array]["sha256"]
            codes = np.load(path, mmap_mode="r")
            assert isinstance(codes, np.memmap) and len(codes) == shard.rows
            assert codes.dtype == (np.int64 if array == "clip_id" else np.uint16)


def test_complete_cache_is_not_encoded_again(built, capsys):
    root, _, args = built
    before = (root / "codes" / "manifest.json").stat().st_mtime_ns
    assert precompute.main(args) == 0
    assert "already complete" in capsys.readouterr().out
    assert (root / "codes" / "manifest.json").stat().st_mtime_ns == before


def test_cache_of_another_checkpoint_is_refused_until_overwrite(built, capsys):
    root, checkpoint, args = built
    cache = _copy_cache(root, "codes_other")
    other = save_tiny_vqvae(root / "other.ckpt", seed=1)
    other_args = precompute_args(other, cache, root / "index", "--splits", "[val]")  # 3 clips: a quick rebuild
    assert precompute.main(other_args) == 2
    error = capsys.readouterr().err
    assert "another VQ-VAE checkpoint" in error and str(checkpoint) in error and "--overwrite" in error
    assert precompute.main(other_args + ["--overwrite"]) == 0
    assert read_manifest(cache).identity.vqvae_sha256 == file_sha256(other)
    assert_codes_match_vqvae(cache, other)


def test_verify_names_a_corrupted_shard(built, capsys):
    root, _, _ = built
    cache = _copy_cache(root, "codes_corrupt")
    assert precompute.main(["--verify", str(cache)]) == 0
    shard = read_manifest(cache).shards[1]
    path = shard_file(cache, shard, "bottom")
    data = bytearray(path.read_bytes())
    data[-1] ^= 1  # one code changed, size intact
    path.write_bytes(bytes(data))
    capsys.readouterr()
    assert precompute.main(["--verify", str(cache)]) == 1
    assert f"shard {shard.name}" in capsys.readouterr().err


class _Killed(RuntimeError):
    pass


def test_killed_run_resumes_to_the_uninterrupted_content(built, monkeypatch):
    root, _, args = built
    cache = root / "codes_killed"
    killed_args = [cache.as_posix() if a == (root / "codes").as_posix() else a for a in args]
    original_write = CodeCacheWriter.write_on_batch_end
    calls = []

    def write_then_die(self, *hook_args, **hook_kwargs):
        if len(calls) == 3:  # 6 clips predicted: shard 0 (4 rows) committed, 2 rows only in memory
            raise _Killed("simulated kill")
        calls.append(1)
        original_write(self, *hook_args, **hook_kwargs)

    monkeypatch.setattr(CodeCacheWriter, "write_on_batch_end", write_then_die)
    with pytest.raises(_Killed):
        precompute.main(killed_args)
    monkeypatch.setattr(CodeCacheWriter, "write_on_batch_end", original_write)
    assert not (cache / "manifest.json").exists() and [s.rows for s in read_progress(cache)] == [4]
    # what kill -9 leaves mid-write: temp files, and shard files written but never recorded as complete
    committed = read_progress(cache)[0]
    (cache / "shards" / f".rank0-00001.top.npy.123{TEMP_SUFFIX}").write_bytes(b"partial")
    (cache / "progress" / f".rank-0.json.123{TEMP_SUFFIX}").write_text('{"shards": [')
    for array in SHARD_ARRAYS:
        shutil.copy(shard_file(cache, committed, array), cache / "shards" / f"rank0-00001.{array}.npy")

    assert precompute.main(killed_args) == 0
    assert_same_content(cache_content(root / "codes"), cache_content(cache))
    assert not list(cache.rglob(f"*{TEMP_SUFFIX}"))
    recorded = {f["file"] for s in read_manifest(cache).shards for f in s.files.values()}
    assert {p.name for p in (cache / "shards").iterdir()} == recorded
    assert precompute.main(["--verify", str(cache)]) == 0


def test_run_killed_before_the_manifest_merge_finishes_without_encoding(built):
    root, _, args = built
    cache = _copy_cache(root, "codes_no_manifest")
    (cache / "manifest.json").unlink()  # every shard committed, killed before rank 0 merged
    resumed_args = [cache.as_posix() if a == (root / "codes").as_posix() else a for a in args]
    assert precompute.main(resumed_args) == 0
    assert_same_content(cache_content(root / "codes"), cache_content(cache))


@pytest.mark.slow
def test_kill_9_mid_run_then_restart_equals_uninterrupted(built, tmp_path):
    """A real SIGKILL of a precompute process as soon as its first shard is committed, wherever it then is."""
    root, checkpoint, _ = built
    args = precompute_args(checkpoint, tmp_path / "killed", root / "index", "--data.max_clips_per_video", "3")
    process = subprocess.Popen([sys.executable, "-m", "vqvideo.cli", "precompute", *args],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    progress = tmp_path / "killed" / "progress" / "rank-0.json"
    deadline = time.monotonic() + 240
    while not progress.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "killed" / "manifest.json").exists(), "finished before the kill: nothing was tested"
    assert precompute.main(args) == 0
    reference = precompute_args(checkpoint, tmp_path / "reference", root / "index", "--data.max_clips_per_video", "3")
    assert precompute.main(reference) == 0
    assert_same_content(cache_content(tmp_path / "reference"), cache_content(tmp_path / "killed"))


def test_unreadable_clip_is_recorded_not_stored(built, monkeypatch, tmp_path):
    root, checkpoint, _ = built
    real_read_clip = fixed_clips.read_clip

    def bikes_is_broken(path, *args, **kwargs):
        if path.endswith("bikes.mp4"):
            raise VideoReadError(path, "decoder error at frame 200 (simulated)")
        return real_read_clip(path, *args, **kwargs)

    monkeypatch.setattr(fixed_clips, "read_clip", bikes_is_broken)
    args = precompute_args(checkpoint, tmp_path / "codes", root / "index", "--splits", "[val]")
    with pytest.warns(UserWarning, match="simulated"):
        assert precompute.main(args) == 0
    manifest = read_manifest(tmp_path / "codes")
    assert [c["rel_path"] for c in manifest.failed_clips] == ["bikes.mp4"]
    assert "simulated" in manifest.failed_clips[0]["reason"]
    assert sorted(c.rel_path for c in manifest.clips) == ["bigbuckbunny.mp4", "carphone_pristine.mp4"]
    dm = CodesDataModule(str(tmp_path / "codes"), "top", batch_size=4, num_workers=0)
    dm.setup()
    assert len(dm.datasets["val"]) == 2


def test_full_disk_is_one_message_naming_the_folder_and_the_space_needed(built, tmp_path, monkeypatch, capsys):
    """A write failing with ENOSPC (here: every shard write) ends the command with one message, not a traceback."""
    import errno

    from vqvideo.cache import shards

    root, checkpoint, _ = built

    def no_space(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(shards, "atomic_write_bytes", no_space)
    out = tmp_path / "codes"
    assert precompute.main(precompute_args(checkpoint, out, root / "index")) == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message.startswith(f"vqvideo precompute: no space left on the device of {out}")
    assert "KB needed" in message and "free" in message and "keeps the finished shards" in message
