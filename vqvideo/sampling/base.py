"""What every sampler shares: options, logit filtering, randomness drawn up front, and the sampling of both priors.

All randomness of one sampled volume is drawn before the first position (`draw_uniforms`), and a code is
picked from its logits by inverse CDF against its own uniform. So the order in which a sampler visits
positions, or how it computes logits (full forward per position, or cached incremental), never changes which
random number a position gets: same seed and same logits give bit-identical codes across samplers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from itertools import product
from typing import Callable, Iterator

import torch
from torch import nn
from tqdm.auto import tqdm


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


Generators = torch.Generator | list[torch.Generator] | None


def draw_uniforms(shape: tuple[int, ...], generator: Generators, device: torch.device | str = "cpu"):
    """Every uniform a volume will consume, drawn at once on CPU generators: (shape) float64 in [0, 1).

    generator: one for the whole batch, or a list with one per batch row (shape[0] of them): then a row's draws
    depend on its own generator only, not on which other rows share its batch (prediction gives each (input,
    sample) its own, so batching never changes a video and a rollout's windows draw from the same stream)."""
    if isinstance(generator, (list, tuple)):
        if len(generator) != shape[0]:
            raise ValueError(f"{len(generator)} generators for a batch of {shape[0]} rows")
        rows = [torch.rand(shape[1:], generator=row_generator, dtype=torch.float64) for row_generator in generator]
        return torch.stack(rows).to(device)
    return torch.rand(shape, generator=generator, dtype=torch.float64).to(device)


def pick_codes(logits: torch.Tensor, uniforms: torch.Tensor, options: SamplingOptions) -> torch.Tensor:
    """Inverse-CDF draw: logits (N, K) float, uniforms (N,) float64 in [0, 1) → codes (N,) int64."""
    probs = filter_logits(logits, options).softmax(-1).double()
    cdf = probs.cumsum(-1)
    codes = torch.searchsorted(cdf, (uniforms * cdf[:, -1]).unsqueeze(-1)).squeeze(-1)
    return codes.clamp_(max=logits.shape[-1] - 1)


def _float32_flags() -> list[tuple[object, str, object]]:
    """(holder, flag, full-float32 value) for CUDA matmuls and cuDNN convolutions."""
    if hasattr(torch.backends.cudnn, "conv"):  # torch >= 2.9; reading the legacy flags after setting these may raise
        return [(torch.backends.cuda.matmul, "fp32_precision", "ieee"),
                (torch.backends.cudnn.conv, "fp32_precision", "ieee")]
    return [(torch.backends.cuda.matmul, "allow_tf32", False), (torch.backends.cudnn, "allow_tf32", False)]


@contextlib.contextmanager
def ieee_float32() -> Iterator[None]:
    """No TF32 inside (the flags are restored after); also a decorator. The samplers compute the same logits with
    different kernels (naive: cuDNN convolutions; cached: matmuls), and cuDNN convolutions default to TF32 on CUDA,
    whose 10-bit mantissa moves logits by ~1e-3: enough to flip codes at near-ties, so the samplers would differ."""
    flags = _float32_flags()
    saved = [getattr(holder, name) for holder, name, _ in flags]
    try:
        for holder, name, value in flags:
            setattr(holder, name, value)
        yield
    finally:
        for (holder, name, _), value in zip(flags, saved):
            setattr(holder, name, value)


ChooseCode = Callable[[int, int, int, torch.Tensor], torch.Tensor]  # (t, y, x, logits (B, K)) → codes (B,) int64


def task_generator(seed: int, *keys: int) -> torch.Generator:
    """The generator of one sampled video, e.g. keys (input index, sample index): a function of the seed and the
    keys only, so a video never depends on the batch it was sampled in or on how many videos came before it."""
    digest = hashlib.sha256(json.dumps([seed, *keys]).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def sampling_uniforms(
    batch_size: int, num_slices: int, height: int, width: int, generator: Generators, device
) -> torch.Tensor:
    """All uniforms of one sampled volume: (B, num_slices, H, W) float64; position (t, y, x) of row b uses
    [b, t, y, x]. Every sampler draws top and bottom volumes with this one call."""
    return draw_uniforms((batch_size, num_slices, height, width), generator, device)


def generation_order(num_slices: int, height: int, width: int, progress: bool, desc: str) -> Iterator[tuple]:
    """(t, y, x) in PixelCNN order: slice after slice, rows top to bottom, columns left to right; a tqdm bar
    over the positions when `progress`."""
    positions = product(range(num_slices), range(height), range(width))
    return iter(tqdm(positions, total=num_slices * height * width, desc=desc, unit="pos", leave=False,
                     disable=not progress))


class Sampler:
    """Autoregressive sampling of both priors (§3.2). Subclasses differ only in `generate`, how the logits of each
    position are computed from a prior's `pixelcnn` (a `GatedPixelCNN`); same seed, same codes for all of them.

    progress: a tqdm bar over the sampled positions.
    """

    name = "sampler"

    def __init__(self, progress: bool = False) -> None:
        self.progress = progress

    def generate(self, pixelcnn: nn.Module, cond: torch.Tensor, choose_code: ChooseCode, desc: str) -> torch.Tensor:
        """Codes (B, T, H, W) int64 of a volume generated in PixelCNN order; cond (B, C_cond, T, H, W) float."""
        raise NotImplementedError

    @torch.no_grad()
    @ieee_float32()
    def sample_top(
        self,
        prior: nn.Module,
        given_top: torch.Tensor,
        given_bottom: torch.Tensor,
        num_slices: int,
        options: SamplingOptions,
        generator: Generators,
    ) -> torch.Tensor:
        """prior: a `TopPrior` in eval mode; given_top (B, Tg, Ht, Wt), given_bottom (B, Tgb, Hb, Wb) int64
        → future top codes (B, num_slices, Ht, Wt) int64."""
        batch_size, _, height, width = given_top.shape
        uniforms = sampling_uniforms(batch_size, num_slices, height, width, generator, given_top.device)
        cond = prior.condition(given_top, given_bottom, num_slices)  # once per volume
        bonus = prior.logit_bonus(cond)  # (B, K, T, Ht, Wt) or 0.0

        def choose_code(t: int, y: int, x: int, logits: torch.Tensor) -> torch.Tensor:
            at = bonus if isinstance(bonus, float) else bonus[:, :, t, y, x]
            return pick_codes(logits + at, uniforms[:, t, y, x], options)

        return self.generate(prior.pixelcnn, cond, choose_code, "top codes")

    @torch.no_grad()
    @ieee_float32()
    def sample_bottom(
        self,
        prior: nn.Module,
        top_codes: torch.Tensor,
        given_bottom: torch.Tensor,
        num_slices: int,
        options: SamplingOptions,
        generator: Generators,
    ) -> torch.Tensor:
        """prior: a `BottomPrior` in eval mode; top_codes (B, Tt, Ht, Wt) int64 (given + sampled), given_bottom
        (B, Tgb, Hb, Wb) int64 → bottom codes (B, Tgb + num_slices, Hb, Wb) int64 whose first Tgb slices are
        given_bottom. Slice after slice, each conditioned on all top codes and the slices before it."""
        batch_size, num_given, height, width = given_bottom.shape
        uniforms = sampling_uniforms(batch_size, num_slices, height, width, generator, given_bottom.device)
        future = given_bottom.new_zeros((batch_size, num_slices, height, width))
        bottom_codes = torch.cat([given_bottom, future], dim=1)  # (B, Tb, Hb, Wb); future slices filled below
        for t in range(num_slices):
            slice_index = torch.full((batch_size,), num_given + t, dtype=torch.long, device=given_bottom.device)
            cond = prior.condition(top_codes, bottom_codes, slice_index)  # (B, C, Hb, Wb)
            bonus = prior.logit_bonus(cond, bottom_codes[:, num_given + t - 1])  # (B, K, Hb, Wb) or 0.0

            def choose_code(_: int, y: int, x: int, logits: torch.Tensor, t: int = t, bonus=bonus) -> torch.Tensor:
                at = bonus if isinstance(bonus, float) else bonus[:, :, y, x]
                return pick_codes(logits + at, uniforms[:, t, y, x], options)

            codes = self.generate(prior.pixelcnn, cond[:, :, None], choose_code, f"bottom slice {t}")
            bottom_codes[:, num_given + t] = codes[:, 0]
        return bottom_codes
