"""The plain autoregressive sampler (paper §3.2): a full pass of the prior's code stack per sampled position.

Top prior: positions of the future top volume are generated left-to-right, top-to-bottom within a time slice,
then slice after slice. Bottom prior: the future bottom slices are generated one after another, each in raster
order, conditioned on all top codes and the bottom slices before it.

The conditioning stacks (`prior.condition(...)`) run once per volume (top) or once per slice (bottom); only
`prior.logits(...)` runs per position. Every uniform a volume consumes is drawn before its first position, in
the layout `sampling_uniforms` defines, so the `cached` sampler (same layout) gives bit-identical codes.
"""

from __future__ import annotations

from itertools import islice, product
from typing import Iterator

import torch
from tqdm.auto import tqdm

from vqvideo.sampling.base import SamplingOptions, draw_uniforms, pick_codes


def sampling_uniforms(
    batch_size: int, num_slices: int, height: int, width: int, generator: torch.Generator | None, device
) -> torch.Tensor:
    """All uniforms of one sampled volume: (B, num_slices, H, W) float64; position (t, y, x) of row b uses
    [b, t, y, x]. Both samplers draw top and bottom volumes with this one call."""
    return draw_uniforms((batch_size, num_slices, height, width), generator, device)


def raster_positions(height: int, width: int) -> Iterator[tuple[int, int]]:
    """(y, x) in PixelCNN order: left to right within a row, rows top to bottom."""
    return product(range(height), range(width))


class NaiveSampler:
    """Samples both priors with one `prior.logits` call per position (no caching). Exact but slow.

    progress: show a tqdm bar over sampled positions.
    max_positions: stop after this many positions of a call (the rest stay 0): times a prefix of the plain
        sampler, whose full run at paper shapes takes hours (`make bench-sample`). None = sample everything.
    """

    name = "naive"

    def __init__(self, progress: bool = False, max_positions: int | None = None) -> None:
        self.progress = progress
        self.max_positions = max_positions

    def _positions(self, num_slices: int, height: int, width: int) -> Iterator[tuple[int, int, int]]:
        """(t, y, x) in sampling order, cut after `max_positions`."""
        order = ((t, y, x) for t in range(num_slices) for y, x in raster_positions(height, width))
        return islice(order, self.max_positions)

    @torch.no_grad()
    def sample_top(
        self,
        prior: torch.nn.Module,
        cond_top: torch.Tensor,
        cond_bottom: torch.Tensor,
        num_slices: int,
        options: SamplingOptions,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """cond_top (B, Tc, Ht, Wt) int64, cond_bottom (B, Tcb, Hb, Wb) int64 → future top (B, num_slices, Ht, Wt)."""
        batch_size, _, height, width = cond_top.shape
        uniforms = sampling_uniforms(batch_size, num_slices, height, width, generator, cond_top.device)
        cond_features = prior.condition(cond_top, cond_bottom, num_slices)
        target_top = cond_top.new_zeros((batch_size, num_slices, height, width))  # (B, Tp, Ht, Wt)
        with self._bar(num_slices * height * width, "top codes") as bar:
            for t, y, x in self._positions(num_slices, height, width):
                logits = prior.logits(target_top, cond_features)  # (B, K, Tp, Ht, Wt)
                target_top[:, t, y, x] = pick_codes(logits[:, :, t, y, x], uniforms[:, t, y, x], options)
                bar.update()
        return target_top

    @torch.no_grad()
    def sample_bottom(
        self,
        prior: torch.nn.Module,
        top_codes: torch.Tensor,
        cond_bottom: torch.Tensor,
        num_slices: int,
        options: SamplingOptions,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """top_codes (B, Tt, Ht, Wt) int64 (given + sampled), cond_bottom (B, Tcb, Hb, Wb) int64 →
        bottom codes (B, Tcb + num_slices, Hb, Wb) int64 whose first Tcb slices are cond_bottom."""
        batch_size, num_given, height, width = cond_bottom.shape
        uniforms = sampling_uniforms(batch_size, num_slices, height, width, generator, cond_bottom.device)
        future = cond_bottom.new_zeros((batch_size, num_slices, height, width))
        bottom_codes = torch.cat([cond_bottom, future], dim=1)  # (B, Tb, Hb, Wb); future slices filled below
        with self._bar(num_slices * height * width, "bottom codes") as bar:
            cond_features = None
            for t, y, x in self._positions(num_slices, height, width):
                if y == 0 and x == 0:
                    # the prior sees only slices < slice_index (zeros stand in for the rest)
                    slice_index = torch.full((batch_size,), num_given + t, dtype=torch.long, device=cond_bottom.device)
                    cond_features = prior.condition(top_codes, bottom_codes, slice_index)
                slice_codes = bottom_codes[:, num_given + t]  # (B, Hb, Wb) view, filled in place
                logits = prior.logits(slice_codes, cond_features)  # (B, K, Hb, Wb)
                slice_codes[:, y, x] = pick_codes(logits[:, :, y, x], uniforms[:, t, y, x], options)
                bar.update()
        return bottom_codes

    def _bar(self, total: int, desc: str):
        return tqdm(total=total, desc=desc, unit="pos", leave=False, disable=not self.progress)
