"""Video prediction as a library (paper §3.2): 4 given frames in, 16 frames out.

1. Encode the given frames on their own with `encode_given_frames`: the same function the code cache used for
   the priors' conditioning codes, so sampling sees exactly the conditioning the priors were trained on.
2. Sample the future top slices with the top prior (conditioned on the given top and bottom codes).
3. Sample the future bottom slices one by one with the bottom prior (each conditioned on all top codes and the
   bottom slices before it).
4. Decode the whole code volume with the VQ-VAE. The first frames are the VQ-VAE's reconstruction of the given
   frames, the rest is the prediction.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from vqvideo.models.vqvae import Codes, encode_given_frames
from vqvideo.sampling.base import Sampler, SamplingOptions

NUM_GIVEN_FRAMES = 4  # paper §3.2: condition on 4 frames, predict 12


class PredictionModels(NamedTuple):
    """The three frozen stages (eval mode, no gradients)."""

    vqvae: nn.Module  # vqvideo.models.vqvae.VQVAE
    top_prior: nn.Module  # vqvideo.models.top_prior.TopPrior
    bottom_prior: nn.Module  # vqvideo.models.bottom_prior.BottomPrior


class Prediction(NamedTuple):
    """video: (B, 3, T, H, W) float32 in [-1, 1], decoded from `codes`.
    codes: Codes(top (B, Tt, Ht, Wt), bottom (B, Tb, Hb, Wb)) int64, given slices followed by sampled ones.
    given_codes: Codes(top (B, Tc, Ht, Wt), bottom (B, Tcb, Hb, Wb)) int64 from `encode_given_frames`."""

    video: torch.Tensor
    codes: Codes
    given_codes: Codes


def sample_codes(
    models: PredictionModels,
    given_codes: Codes,
    top_shape: tuple[int, int, int],
    bottom_shape: tuple[int, int, int],
    sampler: Sampler,
    options: SamplingOptions,
    generator: torch.Generator | None,
) -> Codes:
    """Complete given codes (top (B, Tc, Ht, Wt), bottom (B, Tcb, Hb, Wb)) to full volumes of top_shape (Tt, Ht, Wt)
    and bottom_shape (Tb, Hb, Wb): top slices first, then bottom slices. Returns Codes of (B, Tt, ...), (B, Tb, ...)."""
    _check_given_shapes(given_codes, top_shape, bottom_shape)
    num_top_slices = top_shape[0] - given_codes.top.shape[1]
    num_bottom_slices = bottom_shape[0] - given_codes.bottom.shape[1]
    future_top = sampler.sample_top(
        models.top_prior, given_codes.top, given_codes.bottom, num_top_slices, options, generator
    )  # (B, Tt - Tc, Ht, Wt)
    top_codes = torch.cat([given_codes.top, future_top], dim=1)  # (B, Tt, Ht, Wt)
    bottom_codes = sampler.sample_bottom(
        models.bottom_prior, top_codes, given_codes.bottom, num_bottom_slices, options, generator
    )  # (B, Tb, Hb, Wb)
    return Codes(top=top_codes, bottom=bottom_codes)


@torch.no_grad()
def predict_video(
    models: PredictionModels,
    clip: torch.Tensor,
    num_frames: int,
    sampler: Sampler,
    options: SamplingOptions,
    generator: torch.Generator | None,
    num_given_frames: int = NUM_GIVEN_FRAMES,
) -> Prediction:
    """clip: (B, 3, T, H, W) float32 in [-1, 1] with T >= num_given_frames (only the first num_given_frames are
    used). num_frames: length of the predicted video (the VQ-VAE's training clip length). Returns a Prediction
    whose video is (B, 3, num_frames, H, W)."""
    if clip.shape[2] < num_given_frames:
        raise ValueError(f"prediction needs {num_given_frames} given frames, the clip has {clip.shape[2]}")
    device = next(models.vqvae.parameters()).device
    clip = clip.to(device)
    given_codes = encode_given_frames(models.vqvae, clip, num_given_frames)
    top_shape, bottom_shape = models.vqvae.latent_shapes(num_frames, clip.shape[3], clip.shape[4])
    codes = sample_codes(models, given_codes, tuple(top_shape), tuple(bottom_shape), sampler, options, generator)
    video = models.vqvae.decode_codes(codes.top, codes.bottom)  # (B, 3, num_frames, H, W)
    return Prediction(video=video.float().clamp(-1, 1), codes=codes, given_codes=given_codes)


def _check_given_shapes(given_codes: Codes, top_shape, bottom_shape) -> None:
    if tuple(given_codes.top.shape[2:]) != tuple(top_shape[1:]) or given_codes.top.shape[1] >= top_shape[0]:
        raise ValueError(
            f"given top codes {tuple(given_codes.top.shape[1:])} do not fit the top volume {tuple(top_shape)}"
        )
    if tuple(given_codes.bottom.shape[2:]) != tuple(bottom_shape[1:]) or given_codes.bottom.shape[1] >= bottom_shape[0]:
        raise ValueError(
            f"given bottom codes {tuple(given_codes.bottom.shape[1:])} do not fit the bottom volume "
            f"{tuple(bottom_shape)}"
        )
