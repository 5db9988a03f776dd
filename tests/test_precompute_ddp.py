"""A 2-process DDP precompute (CPU, gloo): each rank writes its own shard set from Lightning's unrepeated
sampler (uneven parts, no padded duplicates), and rank 0's manifest holds every planned clip exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from cache_helpers import assert_codes_match_vqvae, precompute_args, save_tiny_vqvae

from vqvideo.cache.manifest import read_manifest
from vqvideo.cache.shards import shard_file


@pytest.mark.ddp
def test_two_rank_precompute_covers_every_clip_once(tmp_path):
    checkpoint = save_tiny_vqvae(tmp_path / "vqvae.ckpt")
    cache = tmp_path / "codes"
    args = precompute_args(checkpoint, cache, tmp_path / "index", "--trainer.devices", "2",
                           "--trainer.strategy", "ddp", "--splits", "[val]")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-m", "vqvideo.cli", "precompute", *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = read_manifest(cache)
    assert {shard.rank for shard in manifest.shards} == {0, 1}
    stored = Counter()
    for shard in manifest.shards:
        stored.update(np.load(shard_file(cache, shard, "clip_id")).tolist())
    assert sorted(stored) == list(range(len(manifest.clips))) == [c.clip_id for c in manifest.clips]
    assert set(stored.values()) == {1}
    rows_per_rank = Counter()
    for shard in manifest.shards:
        rows_per_rank[shard.rank] += shard.rows
    assert rows_per_rank == {0: 2, 1: 1}  # 3 clips, unrepeated: uneven parts, nothing padded
    assert_codes_match_vqvae(cache, checkpoint)
