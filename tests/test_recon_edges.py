"""benchmarks/recon_edges.py: the edge mask marks the pixels on both sides of a colour step, and nothing on flat
colour or on steps too small to be an outline."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import recon_edges  # noqa: E402  (a script folder, not a package)


def square_clip(step: float) -> torch.Tensor:
    """(1, 3, 2, 8, 8): a flat background with a 2×2 square whose red channel is `step` brighter."""
    clip = torch.full((1, 3, 2, 8, 8), -0.5)
    clip[:, 0, :, 3:5, 3:5] += step
    return clip


def test_an_outline_marks_both_sides_of_the_step():
    mask = recon_edges.edge_mask(square_clip(0.8))
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[2:6, 3:5] = True  # the square and the pixels above and below it
    expected[3:5, 2:6] = True  # and those left and right of it
    assert mask.shape == (1, 2, 8, 8)
    assert torch.equal(mask[0, 0], expected) and torch.equal(mask[0, 1], expected)


def test_flat_colour_and_small_steps_are_not_edges():
    assert not recon_edges.edge_mask(torch.full((1, 3, 2, 8, 8), 0.3)).any()
    assert not recon_edges.edge_mask(square_clip(recon_edges.EDGE_STEP / 2)).any()


def test_db_uses_the_range_of_two():
    assert abs(recon_edges.db(torch.tensor(4e-3)) - 30.0) < 1e-5


def test_the_clips_follow_the_vqvaes_checkpoint_without_a_prior(tmp_path):
    """recon_edges reads clip length, resolution and split from the VQ-VAE alone (`input_spec` with no top prior)."""
    from eval_helpers import NUM_FRAMES, RESOLUTION, save_tiny_stages

    from vqvideo.lit.prediction import input_spec

    checkpoints = save_tiny_stages(tmp_path)
    alone, with_prior = input_spec(str(checkpoints["vqvae"]), None), input_spec(str(checkpoints["vqvae"]),
                                                                               str(checkpoints["top"]))
    assert (alone.num_frames, alone.resolution, alone.val_fraction) == (NUM_FRAMES, RESOLUTION, 0.2)
    assert alone.num_given_frames == 0 and with_prior.num_given_frames == 4
    assert replace(alone, num_given_frames=4) == with_prior
