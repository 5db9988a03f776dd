"""How a VQ-VAE's codes behave in time, and how much the priors lean on the given frames (issue 23, item 4).

A prior continues the given frames' codes; it can only do that well if (1) the given frames encoded alone get the
codes the same frames have inside a whole clip (the codes the priors were trained to continue), and (2) codes stay
put where the picture stays put. These are pure functions on tensors:

- `code_changes`: per step between consecutive time slices, how many codes change — over all positions and over
  positions whose pixels barely change ("still"), where a stable code would not change at all.
- `slice_agreement`: per given slice, the share of positions where the given frames encoded alone agree with the
  same slice of the whole clip's encoding (1.0 for a causal-in-time encoder).
- `bits_per_slice` / `displaced`: a prior's teacher-forced bits per code slice by slice, and each clip's given
  codes moved by half the grid (bits that do not rise when the conditioning is displaced mean the prior ignores it).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

STILL_LEVELS = 3.0  # mean |Δ| under 3 of 255 grey levels per pixel between two slices' frames: "barely changes"


class CodeChanges(NamedTuple):
    """Counts per step s (slice s -> s + 1), summed over clips and positions; all (T' - 1,) int64.

    changed / positions: codes that differ / all positions; still_changed / still_positions: the same among
    positions whose pixels barely change between the two slices."""

    changed: Tensor
    positions: Tensor
    still_changed: Tensor
    still_positions: Tensor

    def share(self) -> float:
        """Share of all codes that change between consecutive slices."""
        return _ratio(self.changed.sum(), self.positions.sum())

    def still_share(self) -> float:
        """Share of codes that change where the pixels barely change (nan when no position is still)."""
        return _ratio(self.still_changed.sum(), self.still_positions.sum())

    def share_per_step(self) -> list[float]:
        return [_ratio(changed, total) for changed, total in zip(self.changed, self.positions)]


def _ratio(numerator: Tensor, denominator: Tensor) -> float:
    return float(numerator) / float(denominator) if int(denominator) else math.nan


def still_positions(videos: Tensor, code_grid: tuple[int, int, int], still_levels: float = STILL_LEVELS) -> Tensor:
    """videos (B, T, H, W, 3) uint8; code_grid (T', H', W') dividing (T, H, W) → (B, T' - 1, H', W') bool: True where
    the pixels under a code position change by less than `still_levels` grey levels (mean |Δ| over the patch, its
    channels and the slice's frames, frame i of slice s against frame i of slice s + 1)."""
    if videos.dtype != torch.uint8 or videos.dim() != 5:
        raise ValueError(f"videos must be uint8 (B, T, H, W, 3), got {videos.dtype} {tuple(videos.shape)}")
    if any(size % grid for size, grid in zip(videos.shape[1:4], code_grid)):
        raise ValueError(f"code grid {tuple(code_grid)} does not divide the videos' (T, H, W) {tuple(videos.shape[1:4])}")
    slices = rearrange(videos.float(), "b (t f) (h p) (w q) c -> b t h w (f p q c)", t=code_grid[0], h=code_grid[1],
                       w=code_grid[2])  # (B, T', H', W', pixels under one code)
    return (slices[:, 1:] - slices[:, :-1]).abs().mean(dim=-1) < still_levels


def code_changes(codes: Tensor, still: Tensor | None = None) -> CodeChanges:
    """codes (B, T', H', W') int; still (B, T' - 1, H', W') bool from `still_positions` (None: no still positions)
    → CodeChanges."""
    if codes.dim() != 4 or codes.shape[1] < 2:
        raise ValueError(f"codes must be (B, T' >= 2, H', W'), got {tuple(codes.shape)}")
    changed = codes[:, 1:] != codes[:, :-1]  # (B, T' - 1, H', W')
    still = torch.zeros_like(changed) if still is None else still.bool()
    if still.shape != changed.shape:
        raise ValueError(f"still mask {tuple(still.shape)} must be (B, T' - 1, H', W') = {tuple(changed.shape)}")
    per_step = lambda mask: mask.sum(dim=(0, 2, 3)).long()  # noqa: E731
    positions = torch.full_like(per_step(changed), changed.shape[0] * changed.shape[2] * changed.shape[3])
    return CodeChanges(per_step(changed), positions, per_step(changed & still), per_step(still))


def slice_agreement(given: Tensor, full: Tensor) -> Tensor:
    """given (B, Tg, H', W') int: the given frames encoded alone; full (B, T', H', W') int: the whole clip's codes
    → (Tg,) float64: per given slice, the share of positions where the two agree."""
    if given.dim() != 4 or given.shape[0] != full.shape[0] or given.shape[2:] != full.shape[2:] \
            or given.shape[1] > full.shape[1]:
        raise ValueError(f"given codes {tuple(given.shape)} are not the first slices of codes {tuple(full.shape)}")
    return (given == full[:, :given.shape[1]]).double().mean(dim=(0, 2, 3))


def bits_per_slice(logits: Tensor, targets: Tensor) -> Tensor:
    """logits (B, K, T, H, W) float, targets (B, T, H, W) int64 → (B, T) float64: mean bits per code of each slice
    (cross-entropy in base 2, as a teacher-forced prior spends them)."""
    if logits.dim() != 5 or logits.shape[:1] + logits.shape[2:] != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} must be (B, K, *targets.shape[1:]) for targets "
                         f"{tuple(targets.shape)}")
    nats = F.cross_entropy(logits.float(), targets, reduction="none").double()  # (B, T, H, W)
    return nats.mean(dim=(2, 3)) / math.log(2)


def displaced(codes: Tensor) -> Tensor:
    """codes (B, T, H, W) int64 → the same codes rolled by half the grid in height and width: each clip's own content
    in the wrong place. The conditioning a prior that reads its given frames must do worse with; it depends on the
    clip alone, not on which clips share its batch, so a multi-device eval reports what a one-device eval does."""
    return codes.roll(shifts=(codes.shape[-2] // 2, codes.shape[-1] // 2), dims=(-2, -1))
