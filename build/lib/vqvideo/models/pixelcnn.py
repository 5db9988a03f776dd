"""The gated PixelCNN both priors share (paper §3.2): masked spatiotemporal convolutions, gated layers, attention.

A gated PixelCNN (van den Oord et al. 2016) extended into time over a (T, H, W) volume, generated slice
after slice and in raster order (rows top to bottom, columns left to right) within a slice. The top prior runs
it over its future top slices (time taps = kernel_size // 2 + 1); the bottom prior over one bottom slice at a
time (T = 1, one time tap: past bottom slices reach it through its conditioning stack instead). Masking is by
weights: every convolution is causal in time — its kernel covers the present slice and `kt - 1` past slices,
with zero padding in front of the first slice — and only the present-slice taps are masked:

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

Convolutions alone cannot reach the deep rows of a *past* slice from the top rows of the present one at any
depth (past-slice features at row y are causal inside that slice); the attention blocks close it (their keys
carry the code embedding shifted one position, so every position sees every earlier code directly). Within a
slice the convolutions alone cover every earlier position once num_layers + 1 >= the slice width (tested).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from vqvideo.models.attention import AttentionBlock, attention_positions, shift_one_position, sinusoidal_positions
from vqvideo.models.layers import gate

STACKS = ("vertical", "horizontal")


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


class GatedLayer(nn.Module):
    """One gated residual layer of both stacks (van den Oord et al. 2016, extended in time).

    hidden_channels: width of the vertical and horizontal streams (Table 4 "hidden units").
    residual_channels: width of the gated branch (Table 4 "residual units"): the masked convs produce
    2 × residual_channels pre-activations, the gate halves them, a 1×1×1 conv maps back to `hidden_channels`.
    cond_channels: width of the conditioning features added inside both gates.
    The vertical → horizontal link reads the *updated* vertical stream at the same position: it only holds
    rows above, so no current-row information can leak (the strictly-above vertical stream replaces the
    down-shift of the original formulation).
    """

    def __init__(
        self,
        hidden_channels: int,
        residual_channels: int,
        cond_channels: int,
        kernel_size: int,
        time_taps: int,
        dropout: float,
    ) -> None:
        super().__init__()
        pre_channels = 2 * residual_channels
        self.vertical_conv = CausalMaskedConv3d(
            hidden_channels, pre_channels, (time_taps, kernel_size, kernel_size), "vertical", include_current=True
        )
        self.horizontal_conv = CausalMaskedConv3d(
            hidden_channels, pre_channels, (time_taps, 1, kernel_size), "horizontal", include_current=True
        )
        self.vertical_cond = pointwise_conv(cond_channels, pre_channels, bias=False)
        self.horizontal_cond = pointwise_conv(cond_channels, pre_channels, bias=False)
        self.vertical_to_horizontal = pointwise_conv(hidden_channels, pre_channels, bias=False)
        self.vertical_out = pointwise_conv(residual_channels, hidden_channels)
        self.horizontal_out = pointwise_conv(residual_channels, hidden_channels)
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


class GatedPixelCNN(nn.Module):
    """Logits of a code volume given per-position conditioning features; the network of both priors.

    num_codes: codebook size of the codes modelled. hidden_channels (Table 4 hidden units), residual_channels
    (Table 4 residual units: width of each layer's gated branch), cond_channels (width of the conditioning
    features), num_layers, num_attention_layers (evenly spaced, `attention_positions`), num_heads,
    kernel_size (odd), time_taps (slices each convolution reads: 1 = this slice only), dropout.
    Network: code embedding; the mask-A input convolutions; `num_layers` gated residual layers, each
    conditioned; attention blocks after some of them; head ELU, 1×1×1 conv, ELU, 1×1×1 conv to logits.
    """

    def __init__(
        self,
        num_codes: int,
        hidden_channels: int,
        residual_channels: int,
        cond_channels: int,
        num_layers: int,
        num_attention_layers: int,
        num_heads: int,
        kernel_size: int,
        time_taps: int,
        dropout: float,
    ) -> None:
        super().__init__()
        if kernel_size % 2 == 0 or kernel_size < 3 or time_taps < 1 or num_layers < 1:
            raise ValueError(
                f"need an odd kernel_size >= 3, time_taps >= 1 and num_layers >= 1; got {kernel_size}, {time_taps}, "
                f"{num_layers}"
            )
        self.num_codes, self.hidden_channels = num_codes, hidden_channels
        self.code_embedding = nn.Embedding(num_codes, hidden_channels)
        vertical_kernel, horizontal_kernel = (time_taps, kernel_size, kernel_size), (time_taps, 1, kernel_size)
        self.vertical_input = CausalMaskedConv3d(
            hidden_channels, hidden_channels, vertical_kernel, "vertical", include_current=False
        )
        self.horizontal_input = CausalMaskedConv3d(
            hidden_channels, hidden_channels, horizontal_kernel, "horizontal", include_current=False
        )
        self.input_link = pointwise_conv(hidden_channels, hidden_channels, bias=False)
        self.layers = nn.ModuleList(
            GatedLayer(hidden_channels, residual_channels, cond_channels, kernel_size, time_taps, dropout)
            for _ in range(num_layers)
        )
        self.attention_after = attention_positions(num_layers, num_attention_layers)
        self.attention_blocks = nn.ModuleDict(
            {str(index): AttentionBlock(hidden_channels, num_heads, dropout) for index in self.attention_after}
        )
        self.output_head = nn.Sequential(
            nn.ELU(),
            pointwise_conv(hidden_channels, hidden_channels),
            nn.ELU(),
            pointwise_conv(hidden_channels, num_codes),
        )

    def attention_block(self, layer_index: int) -> AttentionBlock | None:
        """The attention block that follows gated layer `layer_index` (0-based), if any."""
        return self.attention_blocks[str(layer_index)] if layer_index in self.attention_after else None

    def embed_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, T, H, W) int64 → (B, C, T, H, W) float code embeddings."""
        if codes.dim() != 4:
            raise ValueError(f"codes must be (B, T, H, W), got shape {tuple(codes.shape)}")
        return rearrange(self.code_embedding(codes), "b t h w c -> b c t h w")

    def logits(self, codes: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """codes (B, T, H, W) int64 (teacher forcing), cond (B, C_cond, T, H, W) float → logits
        (B, num_codes, T, H, W) float; position p depends only on codes before p in the generation order."""
        if tuple(codes.shape[1:]) != tuple(cond.shape[2:]):
            raise ValueError(
                f"codes {tuple(codes.shape)} do not match the conditioning volume {tuple(cond.shape[2:])}: build the "
                "conditioning for as many slices as the codes have (num_slices)"
            )
        return self.logits_from_embedding(self.embed_codes(codes), cond)

    def logits_from_embedding(self, embedded: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """embedded (B, C, T, H, W) float (from `embed_codes`), cond (B, C_cond, T, H, W) → logits
        (B, num_codes, T, H, W). Split out so tests can take gradients with respect to the inputs."""
        volume_shape = tuple(embedded.shape[2:])
        positions = sinusoidal_positions(volume_shape, self.hidden_channels, embedded.device, embedded.dtype)
        shifted = shift_one_position(rearrange(embedded, "b c t h w -> b (t h w) c"))  # (B, N, C)
        vertical = self.vertical_input(embedded)
        horizontal = self.horizontal_input(embedded) + self.input_link(vertical)
        for index, layer in enumerate(self.layers):
            vertical, horizontal = layer(vertical, horizontal, cond)
            block = self.attention_block(index)
            if block is not None:
                horizontal = block(horizontal, shifted, positions)
        return self.output_head(horizontal)
