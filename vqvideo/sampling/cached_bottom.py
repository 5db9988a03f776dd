"""Exact cached incremental sampling of the bottom prior (issue 8; the model is vqvideo/models/bottom_prior.py).

A causal network never changes a finished activation, so each sampled position needs only its own new ones:
- the conditioning stack runs once per slice (it depends on the top codes and finished slices only);
- the vertical stack runs once per finished row: layer l's row i needs layer l-1's rows i-2 .. i, kept in a
  ring of k//2+1 rows; its pre-activation, projected to the horizontal stack, is the bias of row i+1;
- the horizontal stack runs once per position on a row buffer of the previous layer's outputs (columns
  j-k//2 .. j), as matrix products with the convolution weights;
- every attention layer keeps a preallocated key/value cache over the slice's raster order.
Per position the work is constant (one pass over the layers) apart from the attention over the cached prefix,
which the full forward pays too. Same weights, same order of operations up to float rounding: the per-position
logits equal `prior.logits` on the finished codes (teacher forcing) to float tolerance, and with the uniforms
drawn up front (`sampling_uniforms`, shared with the naive sampler) the codes are bit-identical.

Public API: `sample_bottom(prior, top_codes, cond_bottom, num_slices, options, generator)` (the `Sampler`
signature of vqvideo/sampling/base.py), `generate_slice(prior, cond, choose_code)` (one slice, any rule) and
`teacher_forced_logits(prior, slice_codes, cond)` (the cached path's logits for given codes).
The prior must be in eval mode (dropout off), as for the naive sampler.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from einops import rearrange

from vqvideo.models.bottom_prior import BottomPrior
from vqvideo.models.gated2d import GatedLayer2d, gate
from vqvideo.sampling.base import SamplingOptions, pick_codes
from vqvideo.sampling.naive import raster_positions, sampling_uniforms

ChooseCode = Callable[[int, int, torch.Tensor], torch.Tensor]  # (row, column, logits (B, K)) → codes (B,) int64


class CachedLayer:
    """One gated layer's state while a slice is generated, and its row / position steps.

    vertical_rows: (B, C, k//2+1, W+2*(k//2)) ring of this layer's vertical-stack *input* rows i-k//2 .. i.
    horizontal_row: (B, W + k//2, C) this layer's horizontal-stack input along the current row (k//2 zero
    columns on the left; channels last, so a window of columns flattens to (B, kw*C) without a copy);
    row_bias: (B, W, 2C) everything the horizontal pre-activation of the current row gets besides its own row
    (the vertical stack of the row above, the conditioning, the conv bias).
    """

    def __init__(self, layer: GatedLayer2d, batch_size: int, width: int, like: torch.Tensor):
        self.layer, self.first = layer, layer.first
        weight = layer.horizontal_conv.conv.weight  # (2C, C, 1, kw)
        self.horizontal_weight = rearrange(weight, "o c 1 k -> (k c) o")  # (kw*C, 2C), column-major like the window
        self.kernel_width = weight.shape[-1]
        self.half = layer.vertical_conv.half
        channels = weight.shape[1]
        self.residual_in = (layer.residual_in.weight[:, :, 0, 0].t(), layer.residual_in.bias)  # (C, R), (R,)
        self.residual_out = (layer.residual_out.weight[:, :, 0, 0].t(), layer.residual_out.bias)  # (R, C), (C,)
        self.vertical_rows = like.new_zeros((batch_size, channels, self.half + 1, width + 2 * self.half))
        self.horizontal_row = like.new_zeros((batch_size, width + self.half, channels))
        # the row above row 0 is zero padding: its projection to the horizontal stack is the bias alone
        above = layer.vertical_to_horizontal.bias.view(1, -1, 1).expand(batch_size, -1, width)
        self.vertical_above = above  # (B, 2C, W)
        self.cond_vertical = None  # (B, 2C, 1, W) of the current row

    def start_row(self, cond_row: torch.Tensor) -> None:
        """cond_row: (B, cond_channels, 1, W) conditioning features of the row about to be generated."""
        cond_vertical, cond_horizontal = self.layer.cond_projection(cond_row).chunk(2, dim=1)  # (B, 2C, 1, W)
        self.cond_vertical = cond_vertical
        bias = self.vertical_above + cond_horizontal[:, :, 0] + self.layer.horizontal_conv.conv.bias[:, None]
        self.row_bias = rearrange(bias, "b o w -> b w o").contiguous()  # (B, W, 2C)
        self.horizontal_row.zero_()

    def push_horizontal_input(self, column: int, features: torch.Tensor) -> None:
        """features: (B, C) this layer's horizontal input at `column` of the current row."""
        self.horizontal_row[:, column + self.half] = features

    def step(self, column: int, horizontal_in: torch.Tensor | None) -> torch.Tensor:
        """The layer's horizontal output at `column`: (B, C). horizontal_in: (B, C) the previous layer's
        output there (None for the first layer, whose input at `column` is the unknown code itself)."""
        if not self.first:
            self.push_horizontal_input(column, horizontal_in)
        window = self.horizontal_row[:, column : column + self.kernel_width]  # (B, kw, C); first: j-k//2 .. j-1
        pre = torch.addmm(self.row_bias[:, column], window.flatten(1), self.horizontal_weight)  # (B, 2C)
        gated = gate(pre)  # (B, C); dropout is identity in eval mode
        hidden = F.relu(torch.addmm(self.residual_in[1], gated, self.residual_in[0]))
        update = torch.addmm(self.residual_out[1], hidden, self.residual_out[0])
        return update if self.first else horizontal_in + update

    def finish_row(self, vertical_in_row: torch.Tensor) -> torch.Tensor:
        """vertical_in_row: (B, C, 1, W) this layer's vertical input on the finished row → its vertical output
        there (B, C, 1, W); also prepares the row below's projection from the vertical stack."""
        padded = F.pad(vertical_in_row, (self.half, self.half))
        self.vertical_rows = torch.cat([self.vertical_rows[:, :, 1:], padded], dim=2)
        pre = self.layer.vertical_conv.conv(self.vertical_rows) + self.cond_vertical  # (B, 2C, 1, W)
        self.vertical_above = self.layer.vertical_to_horizontal(pre)[:, :, 0]  # (B, 2C, W)
        return gate(pre) if self.first else vertical_in_row + gate(pre)


class CachedAttention:
    """One attention layer's key/value cache over a slice's raster order, stepped one position at a time."""

    def __init__(self, attention, batch_size: int, num_positions: int, like: torch.Tensor):
        self.attention = attention  # vqvideo.models.bottom_prior.RasterAttention
        self.positions = attention.position_embedding()  # (H*W, C), computed once
        self.cache = attention.attention.new_cache(batch_size, num_positions, like.device, like.dtype)

    def step(self, position: int, horizontal: torch.Tensor, shifted_code: torch.Tensor) -> torch.Tensor:
        """horizontal, shifted_code: (B, C) → horizontal with attention added, (B, C)."""
        sources = self.attention.sources(horizontal, shifted_code, self.positions[position])  # (B, C), (B, 2C)
        return horizontal + self.attention.attention.step_one(*sources, self.cache, position)


@torch.no_grad()
def generate_slice(prior: BottomPrior, cond: torch.Tensor, choose_code: ChooseCode) -> torch.Tensor:
    """Generate one bottom slice in raster order with cached activations.

    cond: (B, cond_channels, H, W) float from `prior.condition`. choose_code(row, column, logits (B, K)) →
    codes (B,) int64 for that position (sampling, or the true codes when checking against teacher forcing).
    Returns the slice's codes (B, H, W) int64.
    """
    batch_size, _, height, width = cond.shape
    layers = [CachedLayer(layer, batch_size, width, cond) for layer in prior.layers]
    attentions = {
        index: CachedAttention(prior.attentions[str(index)], batch_size, height * width, cond)
        for index in prior.attention_after
    }
    codes = cond.new_zeros((batch_size, height, width), dtype=torch.long)
    shifted_code = cond.new_zeros((batch_size, prior.embedding.embedding_dim))  # embedding of the previous code
    for row, column in raster_positions(height, width):
        if column == 0:
            for layer in layers:
                layer.start_row(cond[:, :, row : row + 1])
        horizontal = None
        for index, layer in enumerate(layers):
            horizontal = layer.step(column, horizontal)
            if index in attentions:
                horizontal = attentions[index].step(row * width + column, horizontal, shifted_code)
        logits = F.linear(F.relu(horizontal), prior.output.weight[:, :, 0, 0], prior.output.bias)  # (B, K)
        codes[:, row, column] = choose_code(row, column, logits)
        shifted_code = prior.embedding(codes[:, row, column])  # (B, C)
        layers[0].push_horizontal_input(column, shifted_code)
        if column == width - 1:
            vertical = rearrange(prior.embedding(codes[:, row]), "b w c -> b c 1 w")
            for layer in layers:
                vertical = layer.finish_row(vertical)
    return codes


@torch.no_grad()
def teacher_forced_logits(prior: BottomPrior, slice_codes: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
    """The cached path's logits at every position when the codes chosen are `slice_codes` (B, H, W) int64:
    (B, K, H, W) float, to compare with `prior.logits(slice_codes, cond)` (exactness checks, benchmarks)."""
    batch_size, _, height, width = cond.shape
    logits = cond.new_empty((batch_size, prior.num_codes, height, width))

    def record(row: int, column: int, position_logits: torch.Tensor) -> torch.Tensor:
        logits[:, :, row, column] = position_logits
        return slice_codes[:, row, column]

    generate_slice(prior, cond, record)
    return logits


@torch.no_grad()
def sample_bottom(
    prior: BottomPrior,
    top_codes: torch.Tensor,
    cond_bottom: torch.Tensor,
    num_slices: int,
    options: SamplingOptions,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """top_codes (B, Tt, Ht, Wt) int64 (given + sampled), cond_bottom (B, Tcb, Hb, Wb) int64 → bottom codes
    (B, Tcb + num_slices, Hb, Wb) int64 whose first Tcb slices are cond_bottom. Same codes as NaiveSampler."""
    batch_size, num_given, height, width = cond_bottom.shape
    uniforms = sampling_uniforms(batch_size, num_slices, height, width, generator, cond_bottom.device)
    future = cond_bottom.new_zeros((batch_size, num_slices, height, width))
    bottom_codes = torch.cat([cond_bottom, future], dim=1)  # (B, Tb, Hb, Wb)
    for t in range(num_slices):
        slice_index = torch.full((batch_size,), num_given + t, dtype=torch.long, device=cond_bottom.device)
        cond = prior.condition(top_codes, bottom_codes, slice_index)  # once per slice

        def choose_code(row: int, column: int, logits: torch.Tensor, t: int = t) -> torch.Tensor:
            return pick_codes(logits, uniforms[:, t, row, column], options)

        bottom_codes[:, num_given + t] = generate_slice(prior, cond, choose_code)
    return bottom_codes
