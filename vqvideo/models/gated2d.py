"""Gated PixelCNN building blocks over one 2D slice (van den Oord et al. 2016, "Conditional Image Generation
with PixelCNN Decoders"), as used by the bottom prior (§3.2: "a 2D PixelCNN ... analogous to Razavi et al.").

Two stacks remove the original PixelCNN's blind spot:
- the vertical stack at row i sees rows <= i (all columns inside the kernel) and is shifted down by one row
  before it feeds the horizontal stack, so the horizontal stack at (i, j) sees rows < i through it;
- the horizontal stack at (i, j) sees columns < j of row i in the first layer (mask "A") and columns <= j of
  the previous layer's horizontal output afterwards (mask "B").
So the output at (i, j) depends on the input only at raster positions before (i, j), and on every such
position once the stack is deep enough (tests/test_bottom_prior.py checks both by gradients).

Every convolution is an unmasked convolution over an explicitly padded input (no weight masks), which makes
the receptive fields exact and lets the cached sampler (vqvideo/sampling/cached_bottom.py) evaluate a
layer on one row or one position with the same weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def gate(preactivation: torch.Tensor) -> torch.Tensor:
    """Gated activation tanh(a) * sigmoid(b): (B, 2C, ...) → (B, C, ...)."""
    value, gate_logit = preactivation.chunk(2, dim=1)
    return torch.tanh(value) * torch.sigmoid(gate_logit)


def shift_down(rows: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) → (B, C, H, W) with row i holding input row i-1 (row 0 zeros)."""
    return F.pad(rows, (0, 0, 1, 0))[:, :, :-1]


class VerticalConv(nn.Module):
    """Conv whose output row i sees input rows i-k//2 .. i and columns j-k//2 .. j+k//2.

    (B, Cin, H, W) → (B, Cout, H, W)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        self.half = kernel_size // 2
        self.conv = nn.Conv2d(in_channels, out_channels, (self.half + 1, kernel_size))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(features, (self.half, self.half, self.half, 0)))


class HorizontalConv(nn.Module):
    """Conv along a row: output column j sees columns j-k//2 .. j (include_current) or j-k//2 .. j-1 (first
    layer, mask "A"). (B, Cin, H, W) → (B, Cout, H, W)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, include_current: bool):
        super().__init__()
        self.half = kernel_size // 2
        self.include_current = include_current
        width = self.half + 1 if include_current else self.half
        self.conv = nn.Conv2d(in_channels, out_channels, (1, width))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.include_current:
            return self.conv(F.pad(features, (self.half, 0, 0, 0)))
        # kernel of width k//2 over columns j-k//2 .. j-1: pad left by k//2, drop the last output column
        return self.conv(F.pad(features, (self.half, 0, 0, 0)))[..., :-1]


class GatedLayer2d(nn.Module):
    """One gated PixelCNN layer with conditioning and a position-wise residual MLP on the horizontal stack.

    vertical:   v' = gate(Vconv(v) + cond_v)                               (+ v after the first layer)
    horizontal: h' = MLP(gate(Hconv(h) + Wvh(shift_down(Vconv(v) + cond_v)) + cond_h)) (+ h after the first)
    MLP = 1x1 conv hidden → residual_channels → hidden with a ReLU (Table 4 "residual units"), after dropout.
    The first layer has no residual: its input at (i, j) is the code at (i, j) itself, which it must not see.
    """

    def __init__(
        self,
        hidden_channels: int,
        residual_channels: int,
        kernel_size: int,
        cond_channels: int,
        first: bool,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.first = first
        double = 2 * hidden_channels
        self.vertical_conv = VerticalConv(hidden_channels, double, kernel_size)
        self.horizontal_conv = HorizontalConv(hidden_channels, double, kernel_size, include_current=not first)
        self.vertical_to_horizontal = nn.Conv2d(double, double, 1)
        # one 1x1 projection of the conditioning features per layer, for both stacks
        self.cond_projection = nn.Conv2d(cond_channels, 2 * double, 1)
        self.dropout = nn.Dropout(dropout)
        self.residual_in = nn.Conv2d(hidden_channels, residual_channels, 1)
        self.residual_out = nn.Conv2d(residual_channels, hidden_channels, 1)

    def horizontal_output(self, horizontal: torch.Tensor, horizontal_pre: torch.Tensor) -> torch.Tensor:
        """Gate, dropout, residual MLP, skip: h (B,C,...) and pre-activation (B,2C,...) → new h (B,C,...)."""
        gated = self.dropout(gate(horizontal_pre))
        update = self.residual_out(F.relu(self.residual_in(gated)))
        return update if self.first else horizontal + update

    def forward(self, vertical: torch.Tensor, horizontal: torch.Tensor, cond: torch.Tensor):
        """vertical, horizontal: (B, hidden, H, W) float; cond: (B, cond_channels, H, W) float → new (v, h)."""
        cond_vertical, cond_horizontal = self.cond_projection(cond).chunk(2, dim=1)
        vertical_pre = self.vertical_conv(vertical) + cond_vertical  # (B, 2C, H, W)
        horizontal_pre = (
            self.horizontal_conv(horizontal)
            + self.vertical_to_horizontal(shift_down(vertical_pre))
            + cond_horizontal
        )
        new_vertical = gate(vertical_pre) if self.first else vertical + gate(vertical_pre)
        return new_vertical, self.horizontal_output(horizontal, horizontal_pre)
