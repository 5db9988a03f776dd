"""The eval's code-level copy-last baseline: the given codes' last slices repeated (`copy_last_slice`), decoded
(`copied_codes_window`), and scored against the ground truth on the first window's predicted frames only."""

from __future__ import annotations

import numpy as np
import torch
from tiny_models import TINY_SPEC, tiny_vqvae_config

from vqvideo.evaluation.records import ClipOutput, ScoringSpec, diagnostic_scores
from vqvideo.models.vqvae import VQVAE, Codes
from vqvideo.sampling.pipeline import copied_codes_window, copy_last_slice


def test_copy_last_slice_repeats_the_last_given_slice():
    given = torch.arange(2 * 2 * 3 * 3).reshape(2, 2, 3, 3)
    copied = copy_last_slice(given, 5)
    assert copied.shape == (2, 5, 3, 3)
    assert torch.equal(copied[:, :2], given)
    assert all(torch.equal(copied[:, index], given[:, 1]) for index in range(2, 5))


def test_the_copied_window_decodes_the_repeated_codes():
    torch.manual_seed(0)
    vqvae = VQVAE(tiny_vqvae_config()).eval()
    spec = TINY_SPEC
    given = Codes(top=torch.randint(0, spec.num_top_codes, (2, *spec.given_top_shape)),
                  bottom=torch.randint(0, spec.num_bottom_codes, (2, *spec.given_bottom_shape)))
    future_bottom = spec.bottom_shape[0] - spec.given_bottom_shape[0]
    with torch.no_grad():
        video = copied_codes_window(vqvae, given, spec.top_shape[0], spec.bottom_shape[0])
        expected = vqvae.decode_codes(given.top.expand(-1, spec.top_shape[0], -1, -1), torch.cat(
            [given.bottom, given.bottom[:, -1:].expand(-1, future_bottom, -1, -1)], dim=1))
    assert torch.equal(video, expected.float().clamp(-1, 1))


def clip_output(truth: np.ndarray, copied: np.ndarray) -> ClipOutput:
    """A one-sample ClipOutput of an 8-frame 8 px clip whose codes are all zero (only the pixels matter here)."""
    zeros = lambda *shape: np.zeros(shape, np.int64)  # noqa: E731
    codes = {"top": zeros(2, 2, 2), "bottom": zeros(4, 4, 4), "given_top": zeros(1, 2, 2),
             "given_bottom": zeros(2, 4, 4)}
    return ClipOutput(truth=truth, reconstruction=truth, top_only=truth, copied_codes=copied, samples=truth[None],
                      codes=codes, sample_codes={name: value[None, None] for name, value in codes.items()}, bits={},
                      features={}, seconds={}, slice_bits={name: np.ones(1) for name in (
                          "top", "top_swapped", "bottom", "bottom_swapped")})


def test_the_copied_codes_are_scored_on_the_predicted_frames_of_the_first_window():
    truth = np.random.default_rng(0).integers(0, 256, (8, 8, 8, 3), dtype=np.uint8)
    copied = truth.copy()
    copied[4] = 255 - copied[4]  # only the first predicted frame differs from the truth
    copied[:4] = 0  # the given frames are not scored
    spec = ScoringSpec(num_given_frames=4, clip_frames=8, num_codes={"top": 4, "bottom": 4},
                       num_given_slices={"top": 1, "bottom": 2}, budget_bits=1e4)
    psnr = diagnostic_scores(clip_output(truth, copied), spec)["psnr.copied_codes"]
    assert psnr.shape == (4,)
    assert np.isfinite(psnr[0]) and psnr[0] < 10 and np.isinf(psnr[1:]).all()
