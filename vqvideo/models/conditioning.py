"""Conditioning stack of the top prior (paper §3.2, Tables 5 and 6).

The given frames' codes (paper: top 1×32×32 and bottom 2×64×64, from `encode_given_frames`) are embedded,
the top grid is upsampled ×2 in space (nearest) to the bottom resolution ("32×32 (upsampled to 64×64×2)",
Table 5), the two are concatenated with their time slices folded into channels, a stride-2 convolution
brings them back down to (Ht, Wt) × 256 (Table 6), the result is tiled over the predicted slices, a 3D
convolution maps it to the hidden width and four residual blocks follow (Table 5). The output conditions
every gated layer of the top prior. It runs once per sampled volume.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn


class ResidualBlock3d(nn.Module):
    """x + conv1(relu(conv3(relu(x)))): channels → residual_channels (3×3×3) → channels (1×1×1)."""

    def __init__(self, channels: int, residual_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(channels, residual_channels, kernel_size=3, padding=1)
        self.project = nn.Conv3d(residual_channels, channels, kernel_size=1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features (B, C, T, H, W) → same shape."""
        return features + self.project(F.relu(self.conv(F.relu(features))))


class TopConditioningStack(nn.Module):
    """Given-frame codes → conditioning features for every predicted top slice.

    num_top_codes / num_bottom_codes: codebook sizes. num_top_slices / num_bottom_slices: given slices
    (paper 1 and 2; they are folded into channels, so they are fixed by the architecture).
    embed_channels: code embedding width (not in the paper; default = the VQ-VAE code dim of Table 3).
    downsampled_channels: width after the stride-2 conv (Table 6: 256). channels: output width (Table 5: 512).
    residual_channels, num_res_blocks: Table 5 (128, 4).
    """

    def __init__(
        self,
        num_top_codes: int,
        num_bottom_codes: int,
        num_top_slices: int = 1,
        num_bottom_slices: int = 2,
        embed_channels: int = 64,
        downsampled_channels: int = 256,
        channels: int = 512,
        residual_channels: int = 128,
        num_res_blocks: int = 4,
    ) -> None:
        super().__init__()
        self.num_top_slices = num_top_slices
        self.num_bottom_slices = num_bottom_slices
        self.top_embedding = nn.Embedding(num_top_codes, embed_channels)
        self.bottom_embedding = nn.Embedding(num_bottom_codes, embed_channels)
        folded_channels = embed_channels * (num_top_slices + num_bottom_slices)
        self.downsample = nn.Conv2d(folded_channels, downsampled_channels, kernel_size=4, stride=2, padding=1)
        self.to_hidden = nn.Conv3d(downsampled_channels, channels, kernel_size=3, padding=1)
        self.res_blocks = nn.Sequential(*[ResidualBlock3d(channels, residual_channels) for _ in range(num_res_blocks)])

    def check_shapes(self, cond_top: torch.Tensor, cond_bottom: torch.Tensor) -> None:
        """Clear errors for given-frame codes that do not fit this stack."""
        if cond_top.dim() != 4 or cond_bottom.dim() != 4:
            raise ValueError(
                f"cond_top and cond_bottom must be (B, T, H, W) code grids, got {tuple(cond_top.shape)} and "
                f"{tuple(cond_bottom.shape)}"
            )
        if cond_top.shape[1] != self.num_top_slices or cond_bottom.shape[1] != self.num_bottom_slices:
            raise ValueError(
                f"the top prior was built for {self.num_top_slices} given top and {self.num_bottom_slices} given "
                f"bottom slices but got cond_top {tuple(cond_top.shape)}, cond_bottom {tuple(cond_bottom.shape)}: "
                "set cond_top_shape / cond_bottom_shape in the top prior YAML to the cache's code_spec"
            )
        top_hw, bottom_hw = tuple(cond_top.shape[2:]), tuple(cond_bottom.shape[2:])
        if bottom_hw != (2 * top_hw[0], 2 * top_hw[1]):
            raise ValueError(
                f"bottom codes must have twice the top resolution (Table 5: 32×32 and 64×64), got top {top_hw} "
                f"and bottom {bottom_hw}"
            )

    def forward(self, cond_top: torch.Tensor, cond_bottom: torch.Tensor, num_slices: int) -> torch.Tensor:
        """cond_top (B, Tc, Ht, Wt) int64, cond_bottom (B, Tcb, 2Ht, 2Wt) int64
        → (B, channels, num_slices, Ht, Wt) float, one tile per predicted slice."""
        self.check_shapes(cond_top, cond_bottom)
        top = rearrange(self.top_embedding(cond_top), "b t h w c -> b (t c) h w")
        top = top.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # nearest ×2: (B, Tc·E, 2Ht, 2Wt)
        bottom = rearrange(self.bottom_embedding(cond_bottom), "b t h w c -> b (t c) h w")
        downsampled = self.downsample(torch.cat([top, bottom], dim=1))  # (B, 256, Ht, Wt)
        tiled = repeat(downsampled, "b c h w -> b c t h w", t=num_slices)
        return F.relu(self.res_blocks(self.to_hidden(tiled)))
