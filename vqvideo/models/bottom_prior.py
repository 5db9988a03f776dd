"""The bottom prior (paper §3.2, Tables 4 and 8): a 2D gated PixelCNN over one bottom slice with multi-head
causal self-attention every few layers (like VQ-VAE-2's bottom prior), conditioned at every layer by the
3D conditioning stack of `bottom_conditioning.py` (top codes + a window of past bottom slices).

Bottom slices are generated one after another; within a slice, codes are generated in raster order. The
logits of slice n at (i, j) depend on
- the codes of slice n only at raster positions before (i, j) (gated stacks + causal attention),
- bottom slices n-w .. n-1 only (the conditioning window), never on slices >= n,
- all top codes (they are sampled before any bottom slice).

`condition(...)` runs once per slice, `logits(...)` once per teacher-forced pass (or per position in the
naive sampler); the cached sampler (vqvideo/sampling/cached_bottom.py) evaluates the same weights
incrementally.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from vqvideo.models.attention import CausalSelfAttention, shift_one_position
from vqvideo.models.bottom_conditioning import BottomConditioning
from vqvideo.models.gated2d import GatedLayer2d


def attention_positions(num_layers: int, num_attention_layers: int) -> list[int]:
    """Indices of the gated layers followed by an attention block, evenly spaced and ending with the last
    layer: 20 layers, 4 attention layers → after layers 5, 10, 15, 20 (indices 4, 9, 14, 19; §3.2 "every five")."""
    if num_attention_layers == 0:
        return []
    if not 0 < num_attention_layers <= num_layers:
        raise ValueError(f"num_attention_layers must be in 0..num_layers={num_layers}, got {num_attention_layers}")
    every = num_layers // num_attention_layers
    return [every * (k + 1) - 1 + num_layers - every * num_attention_layers for k in range(num_attention_layers)]


class RasterAttention(nn.Module):
    """Causal self-attention over a slice's raster order, added to the horizontal stack.

    Queries come from the horizontal features, which at (i, j) already depend only on codes before (i, j), so
    position (i, j) may attend to itself and everything before it (the inclusive mask of CausalSelfAttention).
    Keys and values also see the code embeddings shifted one position along the raster order (the key at p
    carries the code at p - 1), as in PixelSNAIL, so attention reaches every earlier code directly. A learned
    row + column embedding tells the attention where each position sits.
    """

    def __init__(self, hidden_channels: int, num_heads: int, height: int, width: int, dropout: float = 0.0):
        super().__init__()
        self.row_embedding = nn.Parameter(0.02 * torch.randn(height, hidden_channels))
        self.column_embedding = nn.Parameter(0.02 * torch.randn(width, hidden_channels))
        self.norm = nn.LayerNorm(hidden_channels)
        self.attention = CausalSelfAttention(hidden_channels, num_heads, 2 * hidden_channels, dropout=dropout)

    def position_embedding(self) -> torch.Tensor:
        """(H*W, hidden) float in raster order."""
        return rearrange(self.row_embedding[:, None] + self.column_embedding[None], "h w c -> (h w) c")

    def sources(self, horizontal: torch.Tensor, shifted_codes: torch.Tensor, position_rows: torch.Tensor):
        """Query and key/value sources of M raster positions: horizontal (B, M, hidden) features, shifted_codes
        (B, M, hidden) embeddings of the code one position earlier, position_rows (M, hidden) rows of
        `position_embedding()` → (B, M, hidden), (B, M, 2*hidden). One position: (B, hidden), (hidden,) work too."""
        query_source = self.norm(horizontal + position_rows)
        return query_source, torch.cat([query_source, shifted_codes], dim=-1)

    def forward(self, horizontal: torch.Tensor, embedded: torch.Tensor) -> torch.Tensor:
        """horizontal (B, hidden, H, W) float; embedded (B, hidden, H, W) float code embeddings of the slice
        → (B, hidden, H, W) float (attention output added)."""
        height, width = horizontal.shape[-2:]
        sequence = rearrange(horizontal, "b c h w -> b (h w) c")
        shifted_codes = shift_one_position(rearrange(embedded, "b c h w -> b (h w) c"))
        attended = self.attention(*self.sources(sequence, shifted_codes, self.position_embedding()))
        return horizontal + rearrange(attended, "b (h w) c -> b c h w", h=height, w=width)


class BottomPrior(nn.Module):
    """Logits of one bottom slice given the top codes and the past bottom slices.

    num_codes / num_top_codes: codebook sizes (from the cache's code_spec). slice_shape: (Hb, Wb) of a bottom
    slice (the attention's position embeddings need it). Gated PixelCNN: Table 4; conditioning: Table 8.
    """

    def __init__(
        self,
        num_codes: int = 512,
        num_top_codes: int = 512,
        slice_shape: tuple[int, int] = (64, 64),
        hidden_channels: int = 512,
        residual_channels: int = 1024,
        num_layers: int = 20,
        num_attention_layers: int = 4,
        num_heads: int = 8,
        kernel_size: int = 5,
        dropout: float = 0.0,
        window: int = 2,
        top_upsample_stride: tuple[int, int, int] = (2, 2, 2),
        top_embed_dim: int = 64,
        top_channels: int = 1024,
        bottom_embed_dim: int = 64,
        window_channels: int = 256,
        cond_channels: int = 1024,
        cond_residual_channels: int = 256,
        num_cond_blocks: int = 20,
    ):
        super().__init__()
        if kernel_size % 2 == 0 or kernel_size < 3:
            raise ValueError(f"kernel_size must be odd and >= 3, got {kernel_size}")
        self.num_codes = num_codes
        self.slice_shape = tuple(slice_shape)
        self.conditioning = BottomConditioning(
            num_codes, num_top_codes, window, top_embed_dim, top_channels, bottom_embed_dim, window_channels,
            cond_channels, cond_residual_channels, num_cond_blocks, tuple(top_upsample_stride),
        )  # fmt: skip
        self.embedding = nn.Embedding(num_codes, hidden_channels)
        self.layers = nn.ModuleList(
            GatedLayer2d(
                hidden_channels, residual_channels, kernel_size, cond_channels, first=index == 0, dropout=dropout
            )
            for index in range(num_layers)
        )
        self.attention_after = attention_positions(num_layers, num_attention_layers)
        self.attentions = nn.ModuleDict(
            {
                str(index): RasterAttention(hidden_channels, num_heads, *self.slice_shape, dropout)
                for index in self.attention_after
            }
        )
        self.output = nn.Conv2d(hidden_channels, num_codes, 1)

    @property
    def window(self) -> int:
        return self.conditioning.window

    def condition(self, top_codes: torch.Tensor, bottom_codes: torch.Tensor, slice_index: torch.Tensor) -> torch.Tensor:
        """top_codes (B, Tt, Ht, Wt) int64; bottom_codes (B, Tb, Hb, Wb) int64, of which only slices
        slice_index-window .. slice_index-1 are read; slice_index (B,) int64 → cond (B, cond_channels, Hb, Wb)."""
        return self.conditioning(top_codes, bottom_codes, slice_index)

    def logits(self, slice_codes: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """slice_codes (B, Hb, Wb) int64 (teacher forcing: position (i, j) never sees itself or later codes);
        cond (B, cond_channels, Hb, Wb) float from `condition` → logits (B, num_codes, Hb, Wb) float."""
        if tuple(slice_codes.shape[-2:]) != self.slice_shape:
            raise ValueError(
                f"slice of shape {tuple(slice_codes.shape[-2:])}, but the prior was built for {self.slice_shape}"
            )
        embedded = rearrange(self.embedding(slice_codes), "b h w c -> b c h w")
        vertical, horizontal = embedded, embedded
        for index, layer in enumerate(self.layers):
            vertical, horizontal = layer(vertical, horizontal, cond)
            if index in self.attention_after:
                horizontal = self.attentions[str(index)](horizontal, embedded)
        return self.output(F.relu(horizontal))

    def forward(self, bottom_codes: torch.Tensor, top_codes: torch.Tensor, slice_index: torch.Tensor) -> torch.Tensor:
        """bottom_codes (B, Tb, Hb, Wb) int64; top_codes (B, Tt, Ht, Wt) int64; slice_index (B,) int64 →
        logits (B, num_codes, Hb, Wb) float of slice `slice_index` (teacher-forced)."""
        slice_codes = bottom_codes[torch.arange(len(slice_index), device=bottom_codes.device), slice_index]
        return self.logits(slice_codes, self.condition(top_codes, bottom_codes, slice_index))
