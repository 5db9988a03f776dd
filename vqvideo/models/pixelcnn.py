"""Masked spatiotemporal convolutions and the gated layer of the top prior (paper §3.2).

The top prior is a gated PixelCNN (van den Oord et al. 2016) extended into time over a (T, H, W) volume,
generated slice after slice and in raster order (rows top to bottom, columns left to right) within a slice.
Every convolution here is causal in time: its kernel covers the present slice and `kt - 1` past slices
(`kt = kernel_size // 2 + 1`), with zero padding in front of the first slice. Past slices are finished,
so their taps are unmasked; only the present-slice taps are masked, exactly as in the 2D gated PixelCNN:

- vertical stack, kernel (kt, k, k): present slice rows above (and, after the first layer, the current
  row of the vertical stream, which itself only holds information from rows above). §3.2 describes the
  vertical stack as a 2D convolution in the y–t plane; a literal (kt, k, 1) kernel has no x extent, so
  a position would never see the upper-right part of its slice (the original PixelCNN blind spot). We
  give it the x extent of the gated PixelCNN's vertical kernel, which makes it a 3D convolution.
- horizontal stack, kernel (kt, 1, k): the x–t plane of §3.2: present slice columns to the left (and,
  after the first layer, the current column of the horizontal stream).

`include_current=False` is the first ("mask A") layer that reads the code embeddings themselves.
Invariant the tests check by gradients: vertical features at (t, y, x) depend only on slices < t and rows
< y of slice t; horizontal features only on positions before (t, y, x) in the generation order.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

STACKS = ("vertical", "horizontal")


def gate(pre_activation: torch.Tensor) -> torch.Tensor:
    """Gated activation tanh(a) * sigmoid(b): (B, 2C, ...) → (B, C, ...), halves split on dim 1."""
    content, gate_logits = pre_activation.chunk(2, dim=1)
    return torch.tanh(content) * torch.sigmoid(gate_logits)


def pointwise_conv(in_channels: int, out_channels: int, bias: bool = True) -> nn.Conv3d:
    """1×1×1 convolution: a per-position linear map over channels of (B, C, T, H, W)."""
    return nn.Conv3d(in_channels, out_channels, kernel_size=1, bias=bias)


class CausalMaskedConv3d(nn.Conv3d):
    """Convolution over (B, C, T, H, W) that is causal in time and masked in raster order in the present slice.

    kernel_size: (kt, kh, kw), all present-slice taps in the last time index; kh and kw odd.
    stack: "vertical" (present slice: rows above) or "horizontal" (kh must be 1; present slice: columns left).
    include_current: also allow the present slice's current row (vertical) / column (horizontal).
    Output has the input's T, H, W.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, int, int],
        stack: str,
        include_current: bool,
        bias: bool = True,
    ) -> None:
        kt, kh, kw = kernel_size
        if stack not in STACKS:
            raise ValueError(f"stack must be one of {STACKS}, got {stack!r}")
        if kh % 2 == 0 or kw % 2 == 0:
            raise ValueError(f"spatial kernel sizes must be odd, got {kernel_size}")
        if stack == "horizontal" and kh != 1:
            raise ValueError(f"the horizontal stack works within a row: kernel height must be 1, got {kh}")
        super().__init__(in_channels, out_channels, kernel_size, bias=bias)
        self.stack = stack
        self.include_current = include_current
        self.register_buffer("mask", self._present_slice_mask(kernel_size, stack, include_current), persistent=False)

    @staticmethod
    def _present_slice_mask(kernel_size: tuple[int, int, int], stack: str, include_current: bool) -> torch.Tensor:
        """(1, 1, kt, kh, kw) float: 1 where a tap may be read."""
        kt, kh, kw = kernel_size
        mask = torch.ones(1, 1, kt, kh, kw)
        last = 0 if include_current else -1  # offsets <= last are allowed in the present slice
        if stack == "vertical":
            rows = torch.arange(kh) - kh // 2
            mask[:, :, -1, rows > last, :] = 0
        else:
            columns = torch.arange(kw) - kw // 2
            mask[:, :, -1, :, columns > last] = 0
        return mask

    @property
    def padding_thw(self) -> tuple[int, int, int]:
        """Zeros before the first slice, and on both sides of rows and columns (past slices see all around)."""
        kt, kh, kw = self.kernel_size
        return kt - 1, kh // 2, kw // 2

    def masked_weight(self) -> torch.Tensor:
        """(out, in, kt, kh, kw) weight with forbidden taps zeroed."""
        return self.weight * self.mask

    def forward(self, volume: torch.Tensor) -> torch.Tensor:
        """volume (B, C_in, T, H, W) float → (B, C_out, T, H, W)."""
        pad_t, pad_h, pad_w = self.padding_thw
        padded = F.pad(volume, (pad_w, pad_w, pad_h, pad_h, pad_t, 0))
        return F.conv3d(padded, self.masked_weight(), self.bias)


class GatedLayer3d(nn.Module):
    """One gated residual layer of both stacks (van den Oord et al. 2016, extended in time).

    channels: width of the vertical and horizontal streams (Table 4 "hidden units").
    residual_channels: width of the gated branch (Table 4 "residual units"): the masked convs produce
    2 × residual_channels pre-activations, the gate halves them, a 1×1×1 conv maps back to `channels`.
    cond_channels: width of the conditioning features added inside both gates.
    The vertical → horizontal link reads the *updated* vertical stream at the same position: it only holds
    rows above, so no current-row information can leak (the strictly-above vertical stream replaces the
    down-shift of the original formulation).
    """

    def __init__(
        self, channels: int, residual_channels: int, cond_channels: int, kernel_size: int, dropout: float
    ) -> None:
        super().__init__()
        time_taps = kernel_size // 2 + 1
        pre_channels = 2 * residual_channels
        self.vertical_conv = CausalMaskedConv3d(
            channels, pre_channels, (time_taps, kernel_size, kernel_size), "vertical", include_current=True
        )
        self.horizontal_conv = CausalMaskedConv3d(
            channels, pre_channels, (time_taps, 1, kernel_size), "horizontal", include_current=True
        )
        self.vertical_cond = pointwise_conv(cond_channels, pre_channels, bias=False)
        self.horizontal_cond = pointwise_conv(cond_channels, pre_channels, bias=False)
        self.vertical_to_horizontal = pointwise_conv(channels, pre_channels, bias=False)
        self.vertical_out = pointwise_conv(residual_channels, channels)
        self.horizontal_out = pointwise_conv(residual_channels, channels)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, vertical: torch.Tensor, horizontal: torch.Tensor, cond: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """vertical, horizontal (B, C, T, H, W) float; cond (B, C_cond, T, H, W) float
        → updated (vertical, horizontal), same shapes."""
        vertical_pre = self.vertical_conv(vertical) + self.vertical_cond(cond)
        vertical = vertical + self.vertical_out(self.dropout(gate(vertical_pre)))
        horizontal_pre = (
            self.horizontal_conv(horizontal) + self.vertical_to_horizontal(vertical) + self.horizontal_cond(cond)
        )
        horizontal = horizontal + self.horizontal_out(self.dropout(gate(horizontal_pre)))
        return vertical, horizontal
