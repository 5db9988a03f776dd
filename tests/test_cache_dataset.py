"""CodesDataModule over a synthetic two-rank cache: batch layout per target, splicing of given-frame codes,
bottom slice choice, shuffling across shards, workers, in-memory mode and a Lightning-style DistributedSampler."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from pytorch_lightning.utilities.data import _update_dataloader
from torch.utils.data import DistributedSampler

from vqvideo.cache.manifest import CODE_ARRAYS, CacheError, CacheIdentity, ClipRecord, CodeSpec
from vqvideo.cache.shards import RankShardWriter
from vqvideo.cache.writer import merge_manifest
from vqvideo.cache.dataset import CodesDataModule, splice_codes

SPEC = CodeSpec(num_top_codes=512, num_bottom_codes=256, top_shape=(4, 2, 2), bottom_shape=(8, 4, 4),
                given_top_shape=(1, 2, 2), given_bottom_shape=(2, 4, 4), num_given_frames=4)
NUM_TRAIN, NUM_VAL = 24, 6


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A cache written by two ranks (clips interleaved), 5 rows per shard; every code array carries its clip id
    at [.., -1, 0, 0] (full) / [.., 0, 0, 0] (given), so batches can be traced back to clips."""
    root = tmp_path_factory.mktemp("codes")
    rng = np.random.default_rng(0)
    clips = [ClipRecord(i, f"/videos/{i}.mp4", f"{i}.mp4", 0, 16, 1, False, None, "train" if i < NUM_TRAIN else "val")
             for i in range(NUM_TRAIN + NUM_VAL)]
    arrays = {name: rng.integers(0, 256, (len(clips), *SPEC.shape_of(name))).astype(np.uint16)
              for name in CODE_ARRAYS}
    for name in arrays:
        index = (slice(None), -1 if name in ("top", "bottom") else 0, 0, 0)
        arrays[name][index] = np.arange(len(clips))
    for rank in (0, 1):
        writer = RankShardWriter(root, rank, rows_per_shard=5)
        ids = np.arange(rank, len(clips), 2)
        for batch in np.array_split(ids, 4):
            writer.add({name: values[batch] for name, values in arrays.items()} | {"clip_id": batch})
        writer.flush()
    identity = CacheIdentity("outputs/vqvae.ckpt", "0" * 64, {}, "index", {}, "plan")
    merge_manifest(root, identity, SPEC, clips)
    return root, {name: torch.from_numpy(values.astype(np.int64)) for name, values in arrays.items()}


def _val_batches(dm):
    dm.setup("fit")
    return list(dm.val_dataloader())


def test_code_spec_and_vqvae_come_from_the_manifest(cache):
    dm = CodesDataModule(str(cache[0]))
    assert dm.code_spec == SPEC and dm.code_spec.as_dict() == SPEC.as_dict()
    assert CodeSpec.from_dict(SPEC.as_dict()) == SPEC
    assert (SPEC.num_future_top_slices, SPEC.num_future_bottom_slices, SPEC.top_to_bottom_stride) == (3, 6, (2, 2, 2))
    assert dm.vqvae_checkpoint == "outputs/vqvae.ckpt"  # the VQ-VAE that encoded the cache decodes the priors' codes


def test_top_batches_hold_given_codes_and_the_full_encoding_target(cache):
    root, arrays = cache
    (batch,) = _val_batches(CodesDataModule(str(root), "top", batch_size=NUM_VAL, num_workers=0))
    assert set(batch) == {"given_top", "given_bottom", "target_top"}
    assert batch["target_top"].shape == (NUM_VAL, 3, 2, 2) and batch["target_top"].dtype == torch.int64
    val_ids = torch.arange(NUM_TRAIN, NUM_TRAIN + NUM_VAL)
    torch.testing.assert_close(batch["given_top"], arrays["given_top"][val_ids])
    torch.testing.assert_close(batch["given_bottom"], arrays["given_bottom"][val_ids])
    torch.testing.assert_close(batch["target_top"], arrays["top"][val_ids, 1:])


def test_bottom_batches_are_spliced_with_a_slice_to_model(cache):
    root, arrays = cache
    dm = CodesDataModule(str(root), "bottom", batch_size=NUM_VAL, num_workers=0)
    (batch,) = _val_batches(dm)
    val_ids = torch.arange(NUM_TRAIN, NUM_TRAIN + NUM_VAL)
    torch.testing.assert_close(batch["top_codes"][:, :1], arrays["given_top"][val_ids])
    torch.testing.assert_close(batch["top_codes"][:, 1:], arrays["top"][val_ids, 1:])
    torch.testing.assert_close(batch["bottom_codes"][:, :2], arrays["given_bottom"][val_ids])
    torch.testing.assert_close(batch["bottom_codes"][:, 2:], arrays["bottom"][val_ids, 2:])
    # validation: a fixed slice per clip, within [2, 8), not the same for every clip
    torch.testing.assert_close(_val_batches(dm)[0]["slice_index"], batch["slice_index"])
    assert batch["slice_index"].min() >= 2 and batch["slice_index"].max() < 8
    assert len(set(batch["slice_index"].tolist())) > 1
    # training: drawn per sample, covering every predictable slice
    train = dm.datasets["train"]
    drawn = torch.cat([train.__getitems__(list(range(NUM_TRAIN)))["slice_index"] for _ in range(20)])
    assert set(drawn.tolist()) == set(range(2, 8))


def test_train_loader_shuffles_across_shards_and_covers_the_split(cache):
    root, _ = cache
    dm = CodesDataModule(str(root), "top", batch_size=8, num_workers=0)
    dm.setup("fit")
    torch.manual_seed(0)
    batches = [b["target_top"][:, -1, 0, 0] for b in dm.train_dataloader()]  # full top carries the clip id
    seen = torch.cat(batches).tolist()
    assert sorted(seen) == list(range(NUM_TRAIN)) and seen != sorted(seen)
    shards_of_first_batch = {int(dm.datasets["train"].shard_of[clip_id]) for clip_id in batches[0].tolist()}
    assert len(shards_of_first_batch) > 1


def test_workers_and_in_memory_read_the_same_batches(cache):
    root, _ = cache
    reference = _val_batches(CodesDataModule(str(root), "bottom", batch_size=4, num_workers=0))
    dataset = CodesDataModule(str(root), "bottom", num_workers=0)
    dataset.setup()
    dataset.datasets["val"][0]  # opens the memmaps here...
    assert pickle.loads(pickle.dumps(dataset.datasets["val"]))._arrays is None  # ...but never ships them
    for options in ({"num_workers": 1}, {"num_workers": 0, "in_memory": True}):
        batches = _val_batches(CodesDataModule(str(root), "bottom", batch_size=4, **options))
        for got, expected in zip(batches, reference, strict=True):
            for name in expected:
                torch.testing.assert_close(got[name], expected[name])


def test_distributed_sampler_gives_ranks_disjoint_parts(cache):
    root, _ = cache
    dm = CodesDataModule(str(root), "top", batch_size=5, num_workers=0)
    dm.setup("fit")
    parts = []
    for rank in (0, 1):  # what Lightning does under DDP: rebuild the loader around a DistributedSampler
        sampler = DistributedSampler(dm.datasets["train"], num_replicas=2, rank=rank, shuffle=True, seed=0)
        loader = _update_dataloader(dm.train_dataloader(), sampler)
        parts.append({i for b in loader for i in b["target_top"][:, -1, 0, 0].tolist()})
    assert parts[0].isdisjoint(parts[1]) and parts[0] | parts[1] == set(range(NUM_TRAIN))


def test_splice_codes_and_errors(tmp_path):
    given, full = torch.zeros(2, 1, 3, 3, dtype=torch.int64), torch.ones(2, 4, 3, 3, dtype=torch.int64)
    spliced = splice_codes(given, full)
    assert spliced[:, 0].eq(0).all() and spliced[:, 1:].eq(1).all()
    with pytest.raises(ValueError, match="cannot splice"):
        splice_codes(torch.zeros(2, 1, 2, 2), full)
    with pytest.raises(CacheError, match="vqvideo precompute"):
        CodesDataModule(str(tmp_path)).code_spec


def test_test_loader_serves_the_test_split_in_order(cache):
    root, arrays = cache
    dm = CodesDataModule(str(root), "top", batch_size=4, num_workers=0)  # test_split "val": the held-out clips
    dm.setup("test")
    served = torch.cat([batch["target_top"] for batch in dm.test_dataloader()])
    torch.testing.assert_close(served, arrays["top"][NUM_TRAIN:, 1:])
    with pytest.raises(CacheError, match="no 'test' clips"):
        CodesDataModule(str(root), "top", num_workers=0, test_split="test").test_dataloader()
