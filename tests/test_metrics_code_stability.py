"""Code stability in time, given-alone vs in-clip agreement, per-slice bits and the clip swap (issue 23 item 4)."""

from __future__ import annotations

import math

import pytest
import torch

from vqvideo.metrics.code_stability import (
    bits_per_slice, code_changes, displaced, slice_agreement, still_positions,
)


def test_code_changes_counts_by_hand():
    codes = torch.tensor([[[[1, 2]], [[1, 3]], [[4, 3]]]])  # (B=1, T'=3, H'=1, W'=2)
    still = torch.tensor([[[[True, False]], [[True, True]]]])  # (1, 2, 1, 2)
    changes = code_changes(codes, still)
    assert changes.changed.tolist() == [1, 1] and changes.positions.tolist() == [2, 2]
    assert changes.still_changed.tolist() == [0, 1] and changes.still_positions.tolist() == [1, 2]
    assert changes.share() == 0.5 and changes.still_share() == pytest.approx(1 / 3)
    assert changes.share_per_step() == [0.5, 0.5]
    assert math.isnan(code_changes(codes).still_share())


def test_still_positions_marks_only_the_unchanged_patch():
    videos = torch.full((1, 8, 4, 4, 3), 100, dtype=torch.uint8)  # (B, T, H, W, 3)
    videos[:, 4:, :2, :2] = 200  # the top-left patch changes between slice 0 (frames 0-3) and slice 1 (4-7)
    still = still_positions(videos, (2, 2, 2))
    assert still.shape == (1, 1, 2, 2)
    assert still.tolist() == [[[[False, True], [True, True]]]]
    with pytest.raises(ValueError, match="does not divide"):
        still_positions(videos, (3, 2, 2))


def test_slice_agreement_per_given_slice():
    full = torch.tensor([[[[1, 2]], [[3, 4]], [[5, 6]]]])  # (1, 3, 1, 2)
    given = torch.tensor([[[[1, 9]], [[3, 4]]]])  # (1, 2, 1, 2)
    assert slice_agreement(given, full).tolist() == [0.5, 1.0]
    with pytest.raises(ValueError, match="not the first slices"):
        slice_agreement(full, given)


def test_bits_per_slice_uniform_and_certain():
    targets = torch.zeros(2, 3, 2, 2, dtype=torch.long)
    uniform = torch.zeros(2, 8, 3, 2, 2)
    assert torch.allclose(bits_per_slice(uniform, targets), torch.full((2, 3), 3.0, dtype=torch.float64))
    certain = torch.full((2, 8, 3, 2, 2), -1e4)
    certain[:, 0] = 1e4
    assert bits_per_slice(certain, targets).abs().max() < 1e-9


def test_displaced_moves_each_clips_own_codes_by_half_the_grid():
    codes = torch.arange(2 * 1 * 4 * 6).reshape(2, 1, 4, 6)
    moved = displaced(codes)
    assert torch.equal(moved[:, :, 2:, 3:], codes[:, :, :2, :3]) and torch.equal(moved[1], displaced(codes[1:])[0])
    assert not torch.equal(moved, codes)  # each clip keeps its own codes, only their places change:
    assert torch.equal(moved.flatten(1).sort(1).values, codes.flatten(1).sort(1).values)