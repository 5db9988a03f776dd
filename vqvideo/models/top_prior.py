"""Top prior: a gated PixelCNN extended into time, with causal self-attention over the 3D volume (§3.2, Table 4).

It models the future top codes (paper: 3 slices of 32×32) given the given frames' codes (through the
conditioning stack of Tables 5/6, `TopConditioningStack`). Generation order: slice after slice; within a
slice rows top to bottom, columns left to right. The logits at a position depend only on codes earlier
in that order (tests check it by gradients).

Network (all convolutions causal in time, see vqvideo/models/pixelcnn.py):
1. code embedding, then the first masked ("mask A") layer: a 3D (kt, k, k) vertical convolution over rows
   above / past slices, and a (kt, 1, k) horizontal convolution over columns to the left / past slices;
2. `num_layers` gated residual layers (`GatedLayer3d`), each conditioned on the conditioning stack;
3. after every `attention_every`-th gated layer, causal multi-head self-attention over the whole flattened
   volume (§3.2 "attention is applied every five layers"). Queries come from the horizontal stream plus a
   sinusoidal (t, y, x) position code (computed for the input's size, never stored); keys/values from the
   same features concatenated with the code embeddings shifted one position along the generation order.
   The shifted embeddings give every position direct access to every earlier code, which closes the
   blind spot the convolutions alone leave: causal features of a past slice at row y only cover that
   slice down to row y, so deep rows of past slices are out of reach of the convolutions near the top
   of the present slice. Within a slice the convolutions alone cover every earlier position once
   `num_layers` >= the slice width (tested).
4. output head: ELU, 1×1×1 conv, ELU, 1×1×1 conv to `num_codes` logits.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn

from vqvideo.models.attention import CausalSelfAttention, shift_one_position
from vqvideo.models.conditioning import TopConditioningStack
from vqvideo.models.pixelcnn import CausalMaskedConv3d, GatedLayer3d, pointwise_conv


def sinusoidal_positions(
    num_slices: int, height: int, width: int, channels: int, device=None, dtype=torch.float32
) -> torch.Tensor:
    """(N = num_slices·height·width, channels) float position code in generation order.

    A third of the channels (rounded down to even) encodes t, y and x each with sin/cos pairs at geometric
    frequencies; leftover channels are zero. Works for any volume size.
    """
    per_axis = 2 * (channels // 6)
    frequencies = torch.exp(
        -math.log(10000.0) * torch.arange(per_axis // 2, device=device, dtype=torch.float32) / max(1, per_axis // 2)
    )
    codes = []
    for size in (num_slices, height, width):
        angles = torch.arange(size, device=device, dtype=torch.float32)[:, None] * frequencies  # (size, per_axis/2)
        codes.append(torch.cat([angles.sin(), angles.cos()], dim=1))
    t_code, y_code, x_code = codes
    grid = torch.cat(
        [
            t_code[:, None, None].expand(num_slices, height, width, per_axis),
            y_code[None, :, None].expand(num_slices, height, width, per_axis),
            x_code[None, None, :].expand(num_slices, height, width, per_axis),
            torch.zeros(num_slices, height, width, channels - 3 * per_axis, device=device),
        ],
        dim=-1,
    )
    return rearrange(grid, "t h w c -> (t h w) c").to(dtype)


class VolumeAttentionBlock(nn.Module):
    """Residual causal self-attention over a flattened (T, H, W) volume.

    Queries: LayerNorm(features + position code); keys/values: LayerNorm([features + position code, code
    embeddings shifted by one position]). Output: features + dropout(attention).
    """

    def __init__(self, channels: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.query_norm = nn.LayerNorm(channels)
        self.key_value_norm = nn.LayerNorm(2 * channels)
        self.attention = CausalSelfAttention(channels, num_heads, key_value_channels=2 * channels)
        self.dropout = nn.Dropout(dropout)

    def sources(self, features: torch.Tensor, shifted_embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features, shifted_embeddings (B, M, C) with position code already added to features
        → (query source (B, M, C), key/value source (B, M, 2C)); shared by forward and cached sampling."""
        return self.query_norm(features), self.key_value_norm(torch.cat([features, shifted_embeddings], dim=-1))

    def forward(
        self, horizontal: torch.Tensor, shifted_embeddings: torch.Tensor, positions: torch.Tensor
    ) -> torch.Tensor:
        """horizontal (B, C, T, H, W); shifted_embeddings (B, N, C); positions (N, C) → (B, C, T, H, W)."""
        num_slices, height, width = horizontal.shape[2:]
        features = rearrange(horizontal, "b c t h w -> b (t h w) c")
        attended = self.attention(*self.sources(features + positions, shifted_embeddings))
        attended = rearrange(self.dropout(attended), "b (t h w) c -> b c t h w", t=num_slices, h=height, w=width)
        return horizontal + attended


class TopPrior(nn.Module):
    """Conditional prior over the future top codes. Defaults are the paper's (Tables 4–6).

    num_codes: top codebook size (Table 3: 512); num_cond_bottom_codes: bottom codebook size.
    num_cond_top_slices / num_cond_bottom_slices: given top / bottom slices (paper 1 and 2).
    channels (Table 4 hidden units 512), residual_channels (Table 4 residual units 1024),
    num_layers (Table 4: 40), attention_every (§3.2: 5, so 8 attention layers, Table 4), num_heads (8),
    kernel_size (Table 4 conv filter size 3; time taps = kernel_size // 2 + 1), dropout (Table 4: 0.5).
    cond_*: the conditioning stack (Tables 5/6), see `TopConditioningStack`.
    """

    def __init__(
        self,
        num_codes: int = 512,
        num_cond_bottom_codes: int = 512,
        num_cond_top_slices: int = 1,
        num_cond_bottom_slices: int = 2,
        channels: int = 512,
        residual_channels: int = 1024,
        num_layers: int = 40,
        attention_every: int = 5,
        num_heads: int = 8,
        kernel_size: int = 3,
        dropout: float = 0.5,
        cond_embed_channels: int = 64,
        cond_downsampled_channels: int = 256,
        cond_channels: int = 512,
        cond_residual_channels: int = 128,
        num_cond_res_blocks: int = 4,
    ) -> None:
        super().__init__()
        if attention_every < 0 or num_layers < 1:
            raise ValueError(f"need num_layers >= 1 and attention_every >= 0 (0 = no attention), got "
                             f"{num_layers}, {attention_every}")
        self.num_codes = num_codes
        self.channels = channels
        self.attention_every = attention_every
        self.conditioning = TopConditioningStack(
            num_codes, num_cond_bottom_codes, num_cond_top_slices, num_cond_bottom_slices, cond_embed_channels,
            cond_downsampled_channels, cond_channels, cond_residual_channels, num_cond_res_blocks,
        )
        self.code_embedding = nn.Embedding(num_codes, channels)
        time_taps = kernel_size // 2 + 1
        self.vertical_input = CausalMaskedConv3d(
            channels, channels, (time_taps, kernel_size, kernel_size), "vertical", include_current=False
        )
        self.horizontal_input = CausalMaskedConv3d(
            channels, channels, (time_taps, 1, kernel_size), "horizontal", include_current=False
        )
        self.input_link = pointwise_conv(channels, channels, bias=False)
        self.layers = nn.ModuleList(
            GatedLayer3d(channels, residual_channels, cond_channels, kernel_size, dropout) for _ in range(num_layers)
        )
        num_attention = num_layers // attention_every if attention_every else 0
        self.attention_blocks = nn.ModuleList(
            VolumeAttentionBlock(channels, num_heads, dropout) for _ in range(num_attention)
        )
        self.output_head = nn.Sequential(
            nn.ELU(), pointwise_conv(channels, channels), nn.ELU(), pointwise_conv(channels, num_codes)
        )

    def attention_after(self, layer_index: int) -> VolumeAttentionBlock | None:
        """The attention block that follows gated layer `layer_index` (0-based), if any."""
        if not self.attention_every or (layer_index + 1) % self.attention_every:
            return None
        block_index = (layer_index + 1) // self.attention_every - 1
        return self.attention_blocks[block_index] if block_index < len(self.attention_blocks) else None

    def condition(self, cond_top: torch.Tensor, cond_bottom: torch.Tensor, num_slices: int) -> torch.Tensor:
        """cond_top (B, Tc, Ht, Wt) int64, cond_bottom (B, Tcb, Hb, Wb) int64 → (B, C_cond, num_slices, Ht, Wt)."""
        return self.conditioning(cond_top, cond_bottom, num_slices)

    def embed_codes(self, target_top: torch.Tensor) -> torch.Tensor:
        """target_top (B, Tp, Ht, Wt) int64 → (B, C, Tp, Ht, Wt) float code embeddings."""
        if target_top.dim() != 4:
            raise ValueError(f"target_top must be (B, T, H, W) codes, got shape {tuple(target_top.shape)}")
        return rearrange(self.code_embedding(target_top), "b t h w c -> b c t h w")

    def logits(self, target_top: torch.Tensor, cond_features: torch.Tensor) -> torch.Tensor:
        """target_top (B, Tp, Ht, Wt) int64, cond_features (B, C_cond, Tp, Ht, Wt) from `condition`
        → logits (B, num_codes, Tp, Ht, Wt) float; position p depends only on codes before p."""
        if tuple(target_top.shape[1:]) != tuple(cond_features.shape[2:]):
            raise ValueError(
                f"target_top {tuple(target_top.shape)} does not match the conditioning volume "
                f"{tuple(cond_features.shape[2:])}: call condition(..., num_slices=target_top.shape[1])"
            )
        return self.logits_from_embedding(self.embed_codes(target_top), cond_features)

    def logits_from_embedding(self, embedded: torch.Tensor, cond_features: torch.Tensor) -> torch.Tensor:
        """embedded (B, C, Tp, Ht, Wt) float (from `embed_codes`), cond_features (B, C_cond, Tp, Ht, Wt)
        → logits (B, num_codes, Tp, Ht, Wt). Split out so tests can take gradients w.r.t. the inputs."""
        num_slices, height, width = embedded.shape[2:]
        positions = sinusoidal_positions(num_slices, height, width, self.channels, embedded.device, embedded.dtype)
        shifted = shift_one_position(rearrange(embedded, "b c t h w -> b (t h w) c"))  # (B, N, C)
        vertical = self.vertical_input(embedded)
        horizontal = self.horizontal_input(embedded) + self.input_link(vertical)
        for index, layer in enumerate(self.layers):
            vertical, horizontal = layer(vertical, horizontal, cond_features)
            block = self.attention_after(index)
            if block is not None:
                horizontal = block(horizontal, shifted, positions)
        return self.output_head(horizontal)

    def forward(self, target_top: torch.Tensor, cond_top: torch.Tensor, cond_bottom: torch.Tensor) -> torch.Tensor:
        """target_top (B, Tp, Ht, Wt) int64 (teacher forcing), cond_top (B, Tc, Ht, Wt), cond_bottom
        (B, Tcb, Hb, Wb) int64 → logits (B, num_codes, Tp, Ht, Wt) float."""
        return self.logits(target_top, self.condition(cond_top, cond_bottom, target_top.shape[1]))
