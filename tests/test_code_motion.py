"""benchmarks/code_motion.py's code world: the known answer it claims. The future codes follow from the given ones
(objects move one bottom cell per bottom slice and bounce), every top code says which object sits where in its
cell, the given arrays are the clip's first slices, and the cache it writes is one the priors' data module reads."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from vqvideo.cache.dataset import CodesDataModule
from vqvideo.cache.manifest import CodeSpec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import code_motion  # noqa: E402  (a script folder, not a package)
from code_motion import NUM_BACKGROUNDS, reflect, world  # noqa: E402

SPEC = CodeSpec(num_top_codes=64, num_bottom_codes=128, top_shape=(4, 8, 8), bottom_shape=(8, 16, 16),
                given_top_shape=(1, 8, 8), given_bottom_shape=(2, 16, 16), num_given_frames=4)


def test_reflect_bounces_between_the_borders():
    assert reflect(np.arange(-3, 20), 6).tolist() == [3, 2, 1, 0, 1, 2, 3, 4, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 4, 3,
                                                      2, 1]


def test_the_world_is_deterministic_from_the_seed():
    first = world(np.random.default_rng(3), SPEC)
    again = world(np.random.default_rng(3), SPEC)
    other = world(np.random.default_rng(4), SPEC)
    assert all((a == b).all() for a, b in zip(first, again))
    assert not all((a == b).all() for a, b in zip(first, other))


@pytest.mark.parametrize("seed", range(20))
def test_top_codes_say_which_object_is_where_and_objects_move_one_cell_per_slice(seed):
    top, bottom = world(np.random.default_rng(seed), SPEC)
    background = int(top[0].min())
    assert background < NUM_BACKGROUNDS and set(np.unique(bottom[bottom < NUM_BACKGROUNDS])) == {background}
    for n in range(0, SPEC.bottom_shape[0], 2):
        objects_in_cell = {}
        for y, x in zip(*np.nonzero(bottom[n] >= NUM_BACKGROUNDS)):
            code = NUM_BACKGROUNDS + (bottom[n, y, x] - NUM_BACKGROUNDS) * 4 + (y % 2) * 2 + x % 2
            objects_in_cell.setdefault((y // 2, x // 2), set()).add(int(code))
        for (i, j), cell_codes in objects_in_cell.items():
            assert top[n // 2, i, j] in cell_codes  # two objects in one cell: the last drawn one's code
        empty = np.ones(SPEC.top_shape[1:], dtype=bool)
        empty[tuple(np.array(list(objects_in_cell)).T)] = False
        assert (top[n // 2][empty] == background).all()
    counts = (bottom >= NUM_BACKGROUNDS).sum(axis=(1, 2))
    assert 1 <= counts.max() <= 3
    moved = [(bottom[n] != bottom[n + 1]).any() for n in range(SPEC.bottom_shape[0] - 1)]
    assert all(moved)  # every object moves every slice: copying the last given slice is never right on objects


def test_the_cache_is_read_by_the_priors_data_module_with_the_given_codes_as_first_slices(tmp_path):
    code_motion.write_cache(tmp_path / "codes", SPEC, num_clips=20, val_fraction=0.2, seed=0)
    codes, given = code_motion.read_split(tmp_path / "codes", "val")
    assert codes.top.shape == (4, *SPEC.top_shape) and codes.bottom.shape == (4, *SPEC.bottom_shape)
    assert (given.top == codes.top[:, :1]).all() and (given.bottom == codes.bottom[:, :2]).all()
    data = CodesDataModule(str(tmp_path / "codes"), target="top", batch_size=4, num_workers=0)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert batch["target_top"].shape == (4, 3, 8, 8) and int(batch["target_top"].max()) < SPEC.num_top_codes
    rng = np.random.default_rng(0)
    expected = [world(rng, SPEC) for _ in range(20)][16:]
    assert all((codes.top[i].numpy() == top).all() for i, (top, _) in enumerate(expected))


def test_motion_learner_reads_only_the_given_codes_and_reports_each_future_slice(tmp_path):
    import torch

    model = code_motion.Motion(SPEC)
    given_top = torch.randint(SPEC.num_top_codes, (2, *SPEC.given_top_shape))
    given_bottom = torch.randint(SPEC.num_bottom_codes, (2, *SPEC.given_bottom_shape))
    logits = model(given_top, given_bottom)
    assert logits.shape == (2, SPEC.num_top_codes, 3, 8, 8)
    other = given_bottom.clone()
    other[1, 1, 15, 15] = (other[1, 1, 15, 15] + 1) % SPEC.num_bottom_codes  # one bottom cell of clip 1
    moved = (model(given_top, other) - logits).abs().sum(dim=(1, 2))  # (B, Ht, Wt)
    assert moved[0].max() == 0 and moved[1, 7, 7] > 0 and moved[1, 0, 0] == 0  # local, per clip
    code_motion.write_cache(tmp_path / "codes", SPEC, num_clips=20, val_fraction=0.2, seed=0)
    progress = code_motion.motion_calibration(tmp_path, SPEC, steps=4, batch_size=2, learning_rate=1e-3)
    assert [step for step, _ in progress] == [1, 2, 3, 4]
    assert all(len(shares) == 3 and all(0.0 <= share <= 1.0 for share in shares) for _, shares in progress)
