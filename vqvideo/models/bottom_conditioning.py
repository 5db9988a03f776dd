"""The bottom prior's 3D conditioning stack (§3.2 and Table 8 of the paper).

For bottom slice n it combines
- the top codes (B, Tt, Ht, Wt), embedded and upsampled to the bottom latent grid by three convolutions with
  kernels (4,3,3) → (3,4,4) → (3,3,3) and strides (2,1,1) → (1,2,2) → (1,1,1) (Table 8; transposed where
  they upsample), of which slice n is kept;
- the window of past bottom slices n-w .. n-1 (a learned "no slice" vector fills indices < 0), embedded and
  reduced to one map by log2(w) convolutions of kernel (4,3,3) and stride (2,1,1);
concatenated and run through a residual stack (Table 8: 20 blocks, 1024 hidden units, "identical to the one
described in Razavi et al. 2019"). Its output conditions every layer of the gated PixelCNN over slice n.

With a `parent` path (not in the paper) a `ParentCode` path adds, before the residual stack, a learned map of each
bottom cell's own parent top code and its place among the parent's children. Table 8's first convolution mixes
3×3 top cells of up to 4 top slices before any nonlinearity, and through it a cell learns which code is its own
only slowly (measured in the code world of benchmarks/code_motion.py: docs/sprites.md).

Only slice n of the upsampled top volume is used, and the last two upsampling convolutions have temporal
stride 1 and temporal kernel 3: slice n needs only slices n-2 .. n+2 of the first convolution's output. So the
first (cheap, low resolution) convolution runs over the whole volume and the two expensive full-resolution
ones over that 5-slice slab: the same numbers as upsampling the whole volume (tested against it), at ~1/4 of
the cost at the paper's 8 bottom slices.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from vqvideo.models.layers import residual_stack

SLAB_RADIUS = 2  # slice n of the top upsampling needs the first conv's slices n-2 .. n+2


def upsampling_kernel(stride: int) -> tuple[int, int]:
    """(kernel, padding) of a transposed conv that multiplies a length by `stride` exactly.

    Output length (L-1)*s - 2p + k = L*s needs k - 2p = s: (4, 1) for s=2 as in Table 8, (3, 1) for s=1.
    """
    kernel = 2 * stride if stride % 2 == 0 else stride + 2
    return kernel, (kernel - stride) // 2


class TopUpsampler(nn.Module):
    """Top codes → features of one bottom slice: (B, Tt, Ht, Wt) int64, slice_index (B,) → (B, C, Hb, Wb)."""

    def __init__(self, num_top_codes: int, embed_dim: int, channels: int, upsample_stride: tuple[int, int, int]):
        super().__init__()
        time_stride, height_stride, width_stride = upsample_stride
        time_kernel, time_pad = upsampling_kernel(time_stride)
        (height_kernel, height_pad), (width_kernel, width_pad) = map(upsampling_kernel, (height_stride, width_stride))
        self.embedding = nn.Embedding(num_top_codes, embed_dim)
        # Table 8: (4,3,3) stride (2,1,1) → (3,4,4) stride (1,2,2) → (3,3,3) stride 1 at the paper's strides
        self.time_upsample = nn.ConvTranspose3d(
            embed_dim, channels, (time_kernel, 3, 3), stride=(time_stride, 1, 1), padding=(time_pad, 1, 1)
        )
        # temporal padding 2 = "valid" in time for a stride-1, kernel-3 transposed conv (the slab holds the zeros)
        self.space_upsample = nn.ConvTranspose3d(
            channels,
            channels,
            (3, height_kernel, width_kernel),
            stride=(1, height_stride, width_stride),
            padding=(2, height_pad, width_pad),
        )
        self.refine = nn.Conv3d(channels, channels, 3, padding=(0, 1, 1))

    def forward(self, top_codes: torch.Tensor, slice_index: torch.Tensor) -> torch.Tensor:
        coarse = F.relu(self.time_upsample(rearrange(self.embedding(top_codes), "b t h w c -> b c t h w")))
        num_slices = coarse.shape[2]  # Tb
        padded = F.pad(coarse, (0, 0, 0, 0, SLAB_RADIUS, SLAB_RADIUS))  # zeros = the convs' zero padding in time
        offsets = torch.arange(2 * SLAB_RADIUS + 1, device=slice_index.device)
        slab_index = slice_index[:, None] + offsets  # (B, 5) into the padded time axis: n-2 .. n+2
        slab = padded[torch.arange(len(slice_index), device=slice_index.device)[:, None], :, slab_index]
        slab = rearrange(slab, "b t c h w -> b c t h w")  # (B, C, 5, Ht', Wt')
        middle = F.relu(self.space_upsample(slab))  # (B, C, 3, Hb, Wb): slices n-1 .. n
        # slices outside 0 .. Tb-1 are the refine conv's zero padding, not activations
        middle_index = slice_index[:, None] + torch.arange(-1, 2, device=slice_index.device)
        inside = ((middle_index >= 0) & (middle_index < num_slices)).to(middle.dtype)
        middle = middle * inside[:, None, :, None, None]
        return self.refine(middle)[:, :, 0]  # (B, C, Hb, Wb)


class ParentCode(nn.Module):
    """Each bottom cell's parent top code → features: a transposed conv whose kernel equals the stride, so a cell
    reads its parent alone, with weights for its place among the parent's children (a (code, place) lookup).

    num_top_codes, embed_dim: the top codebook and its embedding width. channels: output width. stride: (t, h, w)
    factor from the top grid to the bottom grid."""

    def __init__(self, num_top_codes: int, embed_dim: int, channels: int, stride: tuple[int, int, int]):
        super().__init__()
        self.embedding, self.time_stride = nn.Embedding(num_top_codes, embed_dim), stride[0]
        self.to_children = nn.ConvTranspose3d(embed_dim, channels, stride, stride=stride)

    def forward(self, top_codes: torch.Tensor, slice_index: torch.Tensor) -> torch.Tensor:
        """top_codes (B, Tt, Ht, Wt) int64, slice_index (B,) int64 → (B, channels, Hb, Wb) of bottom slice n."""
        rows = torch.arange(len(slice_index), device=slice_index.device)
        parent = self.embedding(top_codes[rows, slice_index // self.time_stride])  # (B, Ht, Wt, E)
        children = self.to_children(rearrange(parent, "b h w c -> b c 1 h w"))  # (B, C, t, Hb, Wb)
        return children[rows, :, slice_index % self.time_stride]


class PastSliceEncoder(nn.Module):
    """Window of past bottom slices n-w .. n-1 → one map (Table 8's bottom branch).

    The whole bottom volume is embedded, then the window is gathered, with a learned "no slice" vector where
    n-w+k < 0. Slices outside the window get exactly zero gradient (tests check it through the embedding).
    """

    def __init__(self, num_bottom_codes: int, embed_dim: int, channels: int, window: int):
        super().__init__()
        num_convs = int(math.log2(window)) if window >= 1 else -1
        if num_convs < 0 or 2**num_convs != window:
            raise ValueError(f"past-slice window must be a power of two (1, 2, 4, ...), got {window}")
        self.window = window
        self.embedding = nn.Embedding(num_bottom_codes, embed_dim)
        self.no_slice = nn.Parameter(torch.randn(embed_dim))  # learned stand-in for slices before the first
        if num_convs == 0:
            self.convs = nn.ModuleList([nn.Conv3d(embed_dim, channels, (1, 3, 3), padding=(0, 1, 1))])
        else:  # Table 8: kernel (4,3,3), stride (2,1,1): each conv halves the window, log2(w) of them
            widths = [embed_dim] + [channels] * num_convs
            self.convs = nn.ModuleList(
                nn.Conv3d(widths[i], widths[i + 1], (4, 3, 3), stride=(2, 1, 1), padding=1) for i in range(num_convs)
            )

    def window_embedding(self, bottom_codes: torch.Tensor, slice_index: torch.Tensor) -> torch.Tensor:
        """bottom_codes (B, Tb, Hb, Wb) int64, slice_index (B,) int64 → (B, C, w, Hb, Wb) float."""
        embedded = self.embedding(bottom_codes)  # (B, Tb, Hb, Wb, C)
        indices = slice_index[:, None] + torch.arange(-self.window, 0, device=slice_index.device)  # (B, w)
        batch = torch.arange(len(slice_index), device=slice_index.device)[:, None]
        window = embedded[batch, indices.clamp(min=0)]  # (B, w, Hb, Wb, C)
        window = torch.where((indices < 0)[:, :, None, None, None], self.no_slice, window)
        return rearrange(window, "b t h w c -> b c t h w")

    def forward(self, bottom_codes: torch.Tensor, slice_index: torch.Tensor) -> torch.Tensor:
        """bottom_codes (B, Tb, Hb, Wb) int64 (slices >= n are ignored), slice_index (B,) → (B, C, Hb, Wb)."""
        features = self.window_embedding(bottom_codes, slice_index)
        for index, conv in enumerate(self.convs):
            features = conv(features if index == 0 else F.relu(features))
        return features[:, :, 0]  # time reduced to 1: (B, C, Hb, Wb)


class BottomConditioning(nn.Module):
    """Conditioning features of bottom slice n from the top codes and the past-slice window (Table 8).

    num_top_codes / num_bottom_codes: codebook sizes. top_to_bottom_stride: (t, h, w) factor from the top grid to
    the bottom grid (paper (2, 2, 2)). window: past bottom slices read (power of two). cond_embed_dim: code
    embedding width; cond_top_channels / cond_window_channels: widths of the two branches; cond_channels,
    cond_residual_channels, num_cond_blocks: the residual stack (Table 8: 1024 hidden units, 20 blocks).
    `parent`: None, or a `ParentCode` path (not in the paper) that the prior sets when its config asks for it.
    """

    def __init__(
        self,
        num_top_codes: int,
        num_bottom_codes: int,
        top_to_bottom_stride: tuple[int, int, int],
        window: int,
        cond_embed_dim: int,
        cond_top_channels: int,
        cond_window_channels: int,
        cond_channels: int,
        cond_residual_channels: int,
        num_cond_blocks: int,
    ):
        super().__init__()
        self.window = window
        self.top = TopUpsampler(num_top_codes, cond_embed_dim, cond_top_channels, tuple(top_to_bottom_stride))
        self.parent: ParentCode | None = None
        self.past = PastSliceEncoder(num_bottom_codes, cond_embed_dim, cond_window_channels, window)
        self.merge = nn.Conv2d(cond_top_channels + cond_window_channels, cond_channels, 3, padding=1)
        self.blocks = residual_stack(cond_channels, cond_residual_channels, num_cond_blocks, dims=2)

    def forward(self, top_codes: torch.Tensor, bottom_codes: torch.Tensor, slice_index: torch.Tensor) -> torch.Tensor:
        """top_codes (B, Tt, Ht, Wt) int64; bottom_codes (B, Tb', Hb, Wb) int64 of which only slices n-w .. n-1 are
        read (Tb' >= max(n), at least 1); slice_index (B,) int64 → cond (B, cond_channels, Hb, Wb) float."""
        top_features = self.top(top_codes, slice_index)  # (B, cond_top_channels, Hb, Wb)
        past_features = self.past(bottom_codes, slice_index)  # (B, cond_window_channels, Hb, Wb)
        merged = self.merge(torch.cat([top_features, past_features], dim=1))
        if self.parent is not None:
            merged = merged + self.parent(top_codes, slice_index)
        return F.relu(self.blocks(merged))
