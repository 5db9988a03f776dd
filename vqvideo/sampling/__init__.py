"""Autoregressive samplers for the top and bottom priors, chosen by name (`--sampler naive|cached`).

`naive` runs the prior's code stack once per sampled position (vqvideo/sampling/naive.py). `cached` is the
exact incremental sampler: its top half lives in vqvideo/sampling/cached_top.py and its bottom half in
cached_bottom.py, each a module-level function with the `Sampler` signature (`sample_top` / `sample_bottom`).
Both give bit-identical codes for the same seed (randomness is drawn up front, see base.py).
"""

from __future__ import annotations

import importlib
from typing import Callable

from vqvideo.sampling.base import Sampler, SamplingOptions
from vqvideo.sampling.naive import NaiveSampler

SAMPLER_NAMES = ("naive", "cached")
DEFAULT_SAMPLER = "cached"  # exact (same codes as naive, tested end to end in tests/test_predict.py) and fast


class CombinedSampler:
    """A `Sampler` made of one function per prior (used for `cached`, whose halves live in two modules)."""

    def __init__(self, name: str, sample_top: Callable, sample_bottom: Callable) -> None:
        self.name = name
        self.sample_top = sample_top
        self.sample_bottom = sample_bottom


def _cached_half(module_name: str, function_name: str) -> Callable:
    try:
        module = importlib.import_module(f"vqvideo.sampling.{module_name}")
    except ModuleNotFoundError as err:
        if err.name != f"vqvideo.sampling.{module_name}":
            raise
        raise ValueError(
            f"sampler 'cached' needs vqvideo/sampling/{module_name}.py, which is not in this checkout; "
            "use --sampler naive (same codes, slower)"
        ) from err
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ValueError(
            f"vqvideo/sampling/{module_name}.py has no function `{function_name}(prior, ...)` with the Sampler "
            "signature of vqvideo/sampling/base.py; use --sampler naive"
        )
    return function


def get_sampler(name: str = DEFAULT_SAMPLER, progress: bool = False) -> Sampler:
    """The sampler called `name` ("naive" | "cached"). progress: tqdm bar over positions (naive only)."""
    if name == "naive":
        return NaiveSampler(progress=progress)
    if name == "cached":
        return CombinedSampler(
            "cached", _cached_half("cached_top", "sample_top"), _cached_half("cached_bottom", "sample_bottom")
        )
    raise ValueError(f"unknown sampler {name!r}: choose one of {', '.join(SAMPLER_NAMES)}")


__all__ = ["SAMPLER_NAMES", "DEFAULT_SAMPLER", "Sampler", "SamplingOptions", "NaiveSampler", "get_sampler"]
