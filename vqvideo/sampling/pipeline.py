"""Video prediction as a library (paper §3.2): 4 given frames in, 16 frames out — or any longer rollout.

One window (the paper's prediction):
1. Encode the given frames on their own with `encode_given_frames`: the same function the code cache used for
   the priors' conditioning codes, so sampling sees exactly the conditioning the priors were trained on.
2. Sample the future top slices with the top prior (conditioned on the given top and bottom codes).
3. Sample the future bottom slices one by one with the bottom prior (each conditioned on all top codes and the
   bottom slices before it).
4. Decode the whole code volume with the VQ-VAE. The first frames are the VQ-VAE's reconstruction of the given
   frames, the rest is the prediction.

A rollout to N > 16 frames repeats the window: each next window is given the previous window's last 4 decoded
frames (on the uint8 grid of the saved video, so what people see is what conditioned it), encoded alone exactly
as every conditioning clip was encoded for training, and adds 12 new frames; the last window is cut to length.
The 16-frame prediction is the rollout of one window: with the same generators its frames are a rollout's first 16.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from vqvideo.models.vqvae import NUM_GIVEN_FRAMES, Codes, encode_given_frames
from vqvideo.sampling.base import Generators, Sampler, SamplingOptions


class PredictionModels(NamedTuple):
    """The three frozen stages (eval mode, no gradients)."""

    vqvae: nn.Module  # vqvideo.models.vqvae.VQVAE
    top_prior: nn.Module  # vqvideo.models.top_prior.TopPrior
    bottom_prior: nn.Module  # vqvideo.models.bottom_prior.BottomPrior


class Prediction(NamedTuple):
    """video: (B, 3, N, H, W) float32 in [-1, 1]: the given frames' reconstruction, then N - Tg predicted frames.
    codes: Codes(top (B, W, Tt, Ht, Wt), bottom (B, W, Tb, Hb, Wb)) int64 of the W windows, given slices followed
    by sampled ones. given_codes: Codes(top (B, W, Tg, Ht, Wt), bottom (B, W, Tgb, Hb, Wb)) int64, each window's
    given frames encoded alone (`encode_given_frames`). window_starts: first frame of each window in `video`."""

    video: torch.Tensor
    codes: Codes
    given_codes: Codes
    window_starts: list[int]


def sample_codes(
    models: PredictionModels,
    given_codes: Codes,
    top_shape: tuple[int, int, int],
    bottom_shape: tuple[int, int, int],
    sampler: Sampler,
    options: SamplingOptions,
    generator: Generators,
) -> Codes:
    """Complete given codes (top (B, Tg, Ht, Wt), bottom (B, Tgb, Hb, Wb)) to full volumes of top_shape (Tt, Ht, Wt)
    and bottom_shape (Tb, Hb, Wb): top slices first, then bottom slices. Returns Codes of (B, Tt, ...), (B, Tb, ...)."""
    _check_given_shapes(given_codes, top_shape, bottom_shape)
    num_top_slices = top_shape[0] - given_codes.top.shape[1]
    num_bottom_slices = bottom_shape[0] - given_codes.bottom.shape[1]
    future_top = sampler.sample_top(
        models.top_prior, given_codes.top, given_codes.bottom, num_top_slices, options, generator
    )  # (B, Tt - Tg, Ht, Wt)
    top_codes = torch.cat([given_codes.top, future_top], dim=1)  # (B, Tt, Ht, Wt)
    bottom_codes = sampler.sample_bottom(
        models.bottom_prior, top_codes, given_codes.bottom, num_bottom_slices, options, generator
    )  # (B, Tb, Hb, Wb)
    return Codes(top=top_codes, bottom=bottom_codes)


def copy_last_slice(given: torch.Tensor, num_slices: int) -> torch.Tensor:
    """given (B, Tg, H, W) codes → (B, num_slices, H, W): the given slices, then the last one repeated. The code-level
    copy-last baseline: what a prior that only ever copies would predict."""
    return torch.cat([given, given[:, -1:].expand(-1, num_slices - given.shape[1], -1, -1)], dim=1)


def copied_codes_window(vqvae: nn.Module, given_codes: Codes, top_slices: int, bottom_slices: int) -> torch.Tensor:
    """The given codes (top (B, Tg, Ht, Wt), bottom (B, Tgb, Hb, Wb)) with each level's last given slice repeated to
    top_slices / bottom_slices, decoded by `vqvae`: (B, 3, clip frames, H, W) float32 in [-1, 1]."""
    video = vqvae.decode_codes(copy_last_slice(given_codes.top, top_slices),
                               copy_last_slice(given_codes.bottom, bottom_slices))
    return video.float().clamp(-1, 1)


def predict_window(models: PredictionModels, given_frames: torch.Tensor, clip_frames: int, sampler: Sampler,
                   options: SamplingOptions, generator: Generators) -> tuple[torch.Tensor, Codes, Codes]:
    """given_frames (B, 3, Tg, H, W) float in [-1, 1] → (video (B, 3, clip_frames, H, W) float32 in [-1, 1], codes,
    given codes) of one window: the VQ-VAE's clip length `clip_frames` (its training clips)."""
    given_codes = encode_given_frames(models.vqvae, given_frames, given_frames.shape[2])
    top_shape, bottom_shape = models.vqvae.latent_shapes(clip_frames, given_frames.shape[3], given_frames.shape[4])
    codes = sample_codes(models, given_codes, tuple(top_shape), tuple(bottom_shape), sampler, options, generator)
    video = models.vqvae.decode_codes(codes.top, codes.bottom)  # (B, 3, clip_frames, H, W)
    return video.float().clamp(-1, 1), codes, given_codes


def window_starts(num_frames: int, clip_frames: int, num_given_frames: int) -> list[int]:
    """First frame of each window of a rollout to `num_frames` frames: 0, then every clip_frames - num_given_frames
    (16-frame clips and 4 given frames: 0, 12, 24, ...; window w's new frames are 16 + 12 (w - 1) onwards)."""
    if num_frames < clip_frames:
        raise ValueError(f"a prediction has at least {clip_frames} frames (the VQ-VAE's clip length), got {num_frames}")
    step = clip_frames - num_given_frames
    return [index * step for index in range(1 + math.ceil((num_frames - clip_frames) / step))]


def on_uint8_grid(video: torch.Tensor) -> torch.Tensor:
    """video float in [-1, 1] → the same values rounded as `video_to_uint8` stores them (what a saved video shows)."""
    return ((video.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1


@torch.no_grad()
def predict_video(
    models: PredictionModels,
    clip: torch.Tensor,
    clip_frames: int,
    sampler: Sampler,
    options: SamplingOptions,
    generator: Generators,
    num_given_frames: int = NUM_GIVEN_FRAMES,
    num_frames: int | None = None,
) -> Prediction:
    """clip: (B, 3, T, H, W) float32 in [-1, 1] with T >= num_given_frames (only the first num_given_frames are
    used). clip_frames: the VQ-VAE's training clip length (one window). num_frames: length of the predicted video
    (None = clip_frames; more = a rollout of windows). generator: one, or one per batch row (see `draw_uniforms`).
    Returns a Prediction whose video is (B, 3, num_frames, H, W)."""
    num_frames = num_frames or clip_frames
    if clip.shape[2] < num_given_frames:
        raise ValueError(f"prediction needs {num_given_frames} given frames, the clip has {clip.shape[2]}")
    given = clip[:, :, :num_given_frames].to(next(models.vqvae.parameters()).device)
    frames, all_codes, all_given = [], [], []
    for index, _ in enumerate(window_starts(num_frames, clip_frames, num_given_frames)):
        video, codes, given_codes = predict_window(models, given, clip_frames, sampler, options, generator)
        frames.append(video if index == 0 else video[:, :, num_given_frames:])
        all_codes.append(codes)
        all_given.append(given_codes)
        given = on_uint8_grid(video[:, :, -num_given_frames:])
    stack = lambda parts, level: torch.stack([getattr(part, level) for part in parts], dim=1)  # noqa: E731
    return Prediction(
        video=torch.cat(frames, dim=2)[:, :, :num_frames],
        codes=Codes(stack(all_codes, "top"), stack(all_codes, "bottom")),
        given_codes=Codes(stack(all_given, "top"), stack(all_given, "bottom")),
        window_starts=window_starts(num_frames, clip_frames, num_given_frames),
    )


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
