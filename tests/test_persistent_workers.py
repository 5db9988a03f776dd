"""Every training DataModule keeps its DataLoader workers between epochs (a 3-batch demo epoch would otherwise
start its workers again every epoch), and uses none when num_workers is 0."""

from __future__ import annotations

import numpy as np
import pytest

from vqvideo.cache.dataset import CodesDataModule
from vqvideo.cache.manifest import CODE_ARRAYS, CacheIdentity, ClipRecord, CodeSpec
from vqvideo.cache.shards import RankShardWriter
from vqvideo.cache.writer import merge_manifest
from vqvideo.data.datamodule import KineticsDataModule

SPEC = CodeSpec(num_top_codes=16, num_bottom_codes=16, top_shape=(2, 2, 2), bottom_shape=(4, 4, 4),
                given_top_shape=(1, 2, 2), given_bottom_shape=(2, 4, 4), num_given_frames=4)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """A one-shard cache of 6 train and 2 val clips of random codes."""
    root = tmp_path_factory.mktemp("codes")
    clips = [ClipRecord(i, f"/videos/{i}.mp4", f"{i}.mp4", 0, 8, 1, False, None, "train" if i < 6 else "val")
             for i in range(8)]
    rng = np.random.default_rng(0)
    writer = RankShardWriter(root, 0, rows_per_shard=8)
    writer.add({name: rng.integers(0, 16, (8, *SPEC.shape_of(name))).astype(np.uint16) for name in CODE_ARRAYS}
               | {"clip_id": np.arange(8)})
    writer.flush()
    merge_manifest(root, CacheIdentity("vqvae.ckpt", "0" * 64, {}, "index", {}, "plan"), SPEC, clips)
    return str(root)


def loaders(dm):
    dm.setup("fit")
    return [dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()]


@pytest.mark.parametrize("target", ["top", "bottom"])
def test_codes_loaders_keep_their_workers(cache_dir, target):
    for loader in loaders(CodesDataModule(cache_dir, target, batch_size=4, num_workers=1)):
        assert loader.num_workers == 1 and loader.persistent_workers
        first = iter(loader)
        list(first)
        assert iter(loader) is first  # a persistent iterator is reused by the next epoch, workers and all
    for loader in loaders(CodesDataModule(cache_dir, target, batch_size=4, num_workers=0)):
        assert not loader.persistent_workers


def test_clip_loaders_keep_their_workers(tmp_path):
    common = {"num_frames": 4, "resolution": 16, "max_clips_per_video": 1, "index_cache_dir": str(tmp_path),
              "progress": False}
    for loader in loaders(KineticsDataModule(num_workers=1, **common)):
        assert loader.num_workers == 1 and loader.persistent_workers
    for loader in loaders(KineticsDataModule(num_workers=0, **common)):
        assert not loader.persistent_workers
