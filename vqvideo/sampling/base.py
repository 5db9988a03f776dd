"""What every sampler shares: options, logit filtering, and randomness drawn up front.

All randomness of one sampled volume is drawn before the first position (`draw_uniforms`), and a code is
picked from its logits by inverse CDF against its own uniform. So the order in which a sampler visits
positions, or how it computes logits (full forward per position, or cached incremental), never changes which
random number a position gets: same seed and same logits give bit-identical codes across samplers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch


@dataclass(frozen=True)
class SamplingOptions:
    """How a code is drawn from a prior's logits.

    temperature: logits are divided by it (1.0 = the model's distribution; → 0 approaches argmax).
    top_k: keep only the k most likely codes (None = all).
    top_p: nucleus sampling, keep the smallest set of codes whose probability reaches top_p (None = all).
    """

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be >= 1 or None, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1] or None, got {self.top_p}")


def filter_logits(logits: torch.Tensor, options: SamplingOptions) -> torch.Tensor:
    """Apply temperature, top-k and nucleus filtering.

    logits: (N, K) float, one row per position being sampled. Returns (N, K) float32 with excluded codes at -inf.
    """
    logits = logits.float() / options.temperature
    if options.top_k is not None and options.top_k < logits.shape[-1]:
        kth = torch.topk(logits, options.top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if options.top_p is not None and options.top_p < 1:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        # keep a code while the mass *before* it is below top_p, so the most likely code always survives
        drop_sorted = (cumulative - sorted_logits.softmax(-1)) >= options.top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def draw_uniforms(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device | str = "cpu"):
    """Every uniform a volume will consume, drawn at once on the CPU generator: (shape) float64 in [0, 1)."""
    return torch.rand(shape, generator=generator, dtype=torch.float64).to(device)


def pick_codes(logits: torch.Tensor, uniforms: torch.Tensor, options: SamplingOptions) -> torch.Tensor:
    """Inverse-CDF draw: logits (N, K) float, uniforms (N,) float64 in [0, 1) → codes (N,) int64."""
    probs = filter_logits(logits, options).softmax(-1).double()
    cdf = probs.cumsum(-1)
    codes = torch.searchsorted(cdf, (uniforms * cdf[:, -1]).unsqueeze(-1)).squeeze(-1)
    return codes.clamp_(max=logits.shape[-1] - 1)


class Sampler(Protocol):
    """Autoregressive sampling of both priors; `naive` and `cached` implement it with identical results."""

    def sample_top(
        self,
        prior: torch.nn.Module,
        cond_top: torch.Tensor,
        cond_bottom: torch.Tensor,
        num_slices: int,
        options: SamplingOptions,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """cond_top (B, Tc, Ht, Wt) int64, cond_bottom (B, Tcb, Hb, Wb) int64 → (B, num_slices, Ht, Wt) int64."""
        ...

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
        bottom codes (B, Tcb + num_slices, Hb, Wb) int64, the first Tcb slices being cond_bottom."""
        ...
