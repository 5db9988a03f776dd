"""Conditioning stack of the top prior (paper §3.2, Tables 5 and 6).

The given frames' codes (paper: top 1×32×32 and bottom 2×64×64, from `encode_given_frames`) are embedded,
the top grid is upsampled ×2 in space (nearest) to the bottom resolution ("32×32 (upsampled to 64×64×2)",
Table 5), the two are concatenated with their time slices folded into channels, a stride-2 convolution
brings them back down to (Ht, Wt) × 256 (Table 6), the result is tiled over the predicted slices, a 3D
convolution maps it to the conditioning width and four residual blocks follow (Table 5). The output
conditions every gated layer of the top prior. It runs once per sampled volume.

With `num_future_top_slices` (the `cond_per_slice` option, not in the paper) the stride-2 convolution emits 256
features for each predicted slice instead of one tile for all: an object's place differs from slice to slice,
and a tile says the same to every slice, so only the gated layers' causal context could tell them apart.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from vqvideo.models.layers import residual_stack


class TopConditioningStack(nn.Module):
    """Given-frame codes → conditioning features for every predicted top slice.

    num_top_codes / num_bottom_codes: codebook sizes. num_given_top_slices / num_given_bottom_slices: slices of
    the given frames' codes (paper 1 and 2; folded into channels, so fixed by the architecture).
    cond_embed_dim: code embedding width. cond_downsampled_channels: width after the stride-2 conv (Table 6: 256).
    cond_channels: output width (Table 5: 512). cond_residual_channels, num_cond_blocks: Table 5 (128, 4).
    num_future_top_slices: None (the paper) tiles one feature map over the predicted slices; a count gives each of
    that many predicted slices its own (then every call must predict exactly that many).
    """

    def __init__(
        self,
        num_top_codes: int,
        num_bottom_codes: int,
        num_given_top_slices: int,
        num_given_bottom_slices: int,
        cond_embed_dim: int,
        cond_downsampled_channels: int,
        cond_channels: int,
        cond_residual_channels: int,
        num_cond_blocks: int,
        num_future_top_slices: int | None = None,
    ) -> None:
        super().__init__()
        self.num_future_top_slices = num_future_top_slices
        self.num_given_top_slices = num_given_top_slices
        self.num_given_bottom_slices = num_given_bottom_slices
        self.top_embedding = nn.Embedding(num_top_codes, cond_embed_dim)
        self.bottom_embedding = nn.Embedding(num_bottom_codes, cond_embed_dim)
        folded_channels = cond_embed_dim * (num_given_top_slices + num_given_bottom_slices)
        per_slice = num_future_top_slices or 1
        self.downsample = nn.Conv2d(folded_channels, cond_downsampled_channels * per_slice, kernel_size=4, stride=2,
                                    padding=1)
        self.to_hidden = nn.Conv3d(cond_downsampled_channels, cond_channels, kernel_size=3, padding=1)
        self.blocks = residual_stack(cond_channels, cond_residual_channels, num_cond_blocks, dims=3)

    def check_shapes(self, given_top: torch.Tensor, given_bottom: torch.Tensor) -> None:
        """Clear errors for given-frame codes that do not fit this stack."""
        if given_top.dim() != 4 or given_bottom.dim() != 4:
            raise ValueError(
                f"given_top and given_bottom must be (B, T, H, W) code grids, got {tuple(given_top.shape)} and "
                f"{tuple(given_bottom.shape)}"
            )
        if given_top.shape[1] != self.num_given_top_slices or given_bottom.shape[1] != self.num_given_bottom_slices:
            raise ValueError(
                f"the top prior was built for {self.num_given_top_slices} given top and {self.num_given_bottom_slices} "
                f"given bottom slices but got given_top {tuple(given_top.shape)}, given_bottom "
                f"{tuple(given_bottom.shape)}: train the prior on the code cache these codes come from"
            )
        top_hw, bottom_hw = tuple(given_top.shape[2:]), tuple(given_bottom.shape[2:])
        if bottom_hw != (2 * top_hw[0], 2 * top_hw[1]):
            raise ValueError(
                f"bottom codes must have twice the top resolution (Table 5: 32×32 and 64×64), got top {top_hw} "
                f"and bottom {bottom_hw}"
            )

    def forward(self, given_top: torch.Tensor, given_bottom: torch.Tensor, num_slices: int) -> torch.Tensor:
        """given_top (B, Tg, Ht, Wt) int64, given_bottom (B, Tgb, 2Ht, 2Wt) int64
        → (B, cond_channels, num_slices, Ht, Wt) float, one tile per predicted slice."""
        self.check_shapes(given_top, given_bottom)
        top = rearrange(self.top_embedding(given_top), "b t h w c -> b (t c) h w")
        top = top.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # nearest ×2: (B, Tg·E, 2Ht, 2Wt)
        bottom = rearrange(self.bottom_embedding(given_bottom), "b t h w c -> b (t c) h w")
        downsampled = self.downsample(torch.cat([top, bottom], dim=1))  # (B, 256 · slices, Ht, Wt)
        if self.num_future_top_slices is None:
            volume = repeat(downsampled, "b c h w -> b c t h w", t=num_slices)
        elif num_slices != self.num_future_top_slices:
            raise ValueError(
                f"this top prior conditions each of {self.num_future_top_slices} predicted slices separately "
                f"(cond_per_slice) and cannot predict {num_slices}: predict as many slices as its code cache has"
            )
        else:
            volume = rearrange(downsampled, "b (t c) h w -> b c t h w", t=num_slices)
        return F.relu(self.blocks(self.to_hidden(volume)))
