"""Autoregressive samplers for both priors, chosen by name (`--sampler naive|cached`).

`naive` runs the prior's gated PixelCNN over the whole volume once per sampled position; `cached` is the
exact incremental sampler. Both give bit-identical codes for the same seed (randomness is drawn up front,
see base.py), and both sample the top and the bottom prior through the same `Sampler` methods.
"""

from __future__ import annotations

from vqvideo.sampling.base import Sampler, SamplingOptions
from vqvideo.sampling.cached import CachedSampler
from vqvideo.sampling.naive import NaiveSampler

SAMPLERS = {"naive": NaiveSampler, "cached": CachedSampler}
SAMPLER_NAMES = tuple(SAMPLERS)
DEFAULT_SAMPLER = "cached"  # exact (same codes as naive, tested end to end) and fast


def get_sampler(name: str = DEFAULT_SAMPLER, progress: bool = False) -> Sampler:
    """The sampler called `name` ("naive" | "cached"). progress: a tqdm bar over the sampled positions."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}: choose one of {', '.join(SAMPLER_NAMES)}")
    return SAMPLERS[name](progress=progress)


__all__ = ["SAMPLER_NAMES", "DEFAULT_SAMPLER", "Sampler", "SamplingOptions", "NaiveSampler", "CachedSampler",
           "get_sampler"]
