"""Causal multi-head self-attention over a flattened generation order, for both PixelCNN priors (§3.2).

The priors attend over a flattened volume (top prior: slices × rows × columns; bottom prior: the rows ×
columns of one slice) after evenly spaced gated layers ("attention is applied every five layers", §3.2; as in
Razavi et al. 2019 / PixelSNAIL): `attention_positions` places them, `AttentionBlock` is the residual block.

Causality convention: position n attends to positions m <= n (the diagonal is included). This is exact
for PixelCNN features, which at position n depend only on inputs at positions < n. Raw inputs (code
embeddings) depend on their own position, so feed them shifted one step along the order
(`shift_one_position`): the key at m then carries input m - 1, and query n reaches every input < n
directly — the attention layer alone has no blind spot.

Two ways to run the same weights:
- `forward(query_source, key_value_source)`: whole sequence at once (training, teacher forcing);
- `step(query_source, key_value_source, cache, start)`: incremental generation of M >= 1 new positions
  [start, start + M) against a preallocated `KeyValueCache` (`new_cache`), which `step` fills in place.
  Results equal `forward` on the same prefix up to float rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def shift_one_position(sequence: torch.Tensor) -> torch.Tensor:
    """sequence (B, N, C) → (B, N, C) where row n holds row n - 1 and row 0 is zeros (strictly causal inputs)."""
    return F.pad(sequence, (0, 0, 1, 0))[:, :-1]


@dataclass
class KeyValueCache:
    """Keys and values of positions generated so far, preallocated for the whole sequence.

    keys, values: (B, num_heads, head_channels, max_positions) float, positions last so that a prefix
    [:end] is a plain strided matrix for the matmuls (no copy); column m is valid once position m was passed
    to `CausalSelfAttention.step`.
    """

    keys: torch.Tensor
    values: torch.Tensor

    @property
    def max_positions(self) -> int:
        return self.keys.shape[3]


class CausalSelfAttention(nn.Module):
    """Multi-head attention where position n attends to positions m <= n.

    channels: width of the query source and of the output. key_value_channels: width of the key/value
    source (default `channels`; the top prior feeds [features, shifted inputs] there). num_heads must
    divide channels. dropout: on the attention weights, training only.
    """

    def __init__(
        self, channels: int, num_heads: int, key_value_channels: int | None = None, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if channels % num_heads != 0:
            raise ValueError(f"attention channels {channels} must be divisible by num_heads {num_heads}")
        self.channels = channels
        self.num_heads = num_heads
        self.head_channels = channels // num_heads
        self.key_value_channels = key_value_channels or channels
        self.dropout = dropout
        self.query = nn.Linear(channels, channels)
        self.key_value = nn.Linear(self.key_value_channels, 2 * channels)
        self.out = nn.Linear(channels, channels)

    def _project(self, query_source: torch.Tensor, key_value_source: torch.Tensor):
        """(B, M, C), (B, M, Ckv) → queries, keys, values each (B, heads, M, head_channels)."""
        queries = rearrange(self.query(query_source), "b m (h d) -> b h m d", h=self.num_heads)
        key_values = self.key_value(key_value_source)
        keys, values = rearrange(key_values, "b m (two h d) -> two b h m d", two=2, h=self.num_heads)
        return queries, keys, values

    def forward(self, query_source: torch.Tensor, key_value_source: torch.Tensor | None = None) -> torch.Tensor:
        """query_source (B, N, C) float, key_value_source (B, N, Ckv) float or None (= query_source)
        → (B, N, C): output at n mixes values of positions m <= n."""
        key_value_source = query_source if key_value_source is None else key_value_source
        queries, keys, values = self._project(query_source, key_value_source)
        dropout = self.dropout if self.training else 0.0
        mixed = F.scaled_dot_product_attention(queries, keys, values, dropout_p=dropout, is_causal=True)
        return self.out(rearrange(mixed, "b h n d -> b n (h d)"))

    def new_cache(
        self, batch_size: int, max_positions: int, device: torch.device | str | None = None, dtype=None
    ) -> KeyValueCache:
        """Zeroed cache for sequences of up to `max_positions` positions."""
        dtype = dtype or self.query.weight.dtype
        device = device or self.query.weight.device
        shape = (batch_size, self.num_heads, self.head_channels, max_positions)
        keys, values = (torch.zeros(shape, device=device, dtype=dtype) for _ in range(2))
        return KeyValueCache(keys, values)

    def step(
        self,
        query_source: torch.Tensor,
        key_value_source: torch.Tensor | None,
        cache: KeyValueCache,
        start: int,
    ) -> torch.Tensor:
        """Attention output for the M new positions [start, start + M), given all earlier ones are cached.

        query_source (B, M, C) float, key_value_source (B, M, Ckv) float or None (= query_source).
        Writes their keys/values into `cache` rows [start, start + M); returns (B, M, C). Each new position
        attends to the cached prefix and to the new positions up to itself, exactly as `forward` does.
        """
        key_value_source = query_source if key_value_source is None else key_value_source
        num_new = query_source.shape[1]
        end = start + num_new
        if end > cache.max_positions:
            raise ValueError(f"attention step writes positions up to {end} but the cache holds {cache.max_positions}")
        if num_new == 1:
            return self.step_one(query_source[:, 0], key_value_source[:, 0], cache, start)[:, None]
        queries, keys, values = self._project(query_source, key_value_source)
        cache.keys[..., start:end] = keys.transpose(-1, -2)
        cache.values[..., start:end] = values.transpose(-1, -2)
        # Plain matmuls, not F.scaled_dot_product_attention: its CPU flash kernel costs ~1 ms per call for one
        # query against a few thousand keys, 20x these two small matmuls.
        scores = (queries * self.head_channels**-0.5) @ cache.keys[..., :end]  # (B, h, M, end)
        key_positions = torch.arange(end, device=queries.device)
        query_positions = torch.arange(start, end, device=queries.device)  # new positions must not see later ones
        scores = scores.masked_fill(key_positions[None, :] > query_positions[:, None], float("-inf"))
        mixed = cache.values[..., :end] @ scores.softmax(dim=-1).transpose(-1, -2)  # (B, h, head_channels, M)
        return self.out(rearrange(mixed, "b h d m -> b m (h d)"))

    def step_one(
        self, query_source: torch.Tensor, key_value_source: torch.Tensor | None, cache: KeyValueCache, position: int
    ) -> torch.Tensor:
        """`step` for one new position with 2D tensors and fewer ops (the per-position path of cached sampling).

        query_source (B, C) float, key_value_source (B, Ckv) float or None (= query_source) → (B, C).
        """
        key_value_source = query_source if key_value_source is None else key_value_source
        if position >= cache.max_positions:
            raise ValueError(f"attention step writes position {position} but the cache holds {cache.max_positions}")
        batch_size, heads, head_channels = query_source.shape[0], self.num_heads, self.head_channels
        queries = self.query(query_source).view(batch_size, heads, 1, head_channels)
        key_values = self.key_value(key_value_source).view(batch_size, 2, heads, head_channels)
        cache.keys[..., position] = key_values[:, 0]
        cache.values[..., position] = key_values[:, 1]
        scores = (queries * head_channels**-0.5) @ cache.keys[..., : position + 1]  # (B, h, 1, position + 1)
        weights = scores.softmax(dim=-1).view(batch_size, heads, position + 1, 1)
        mixed = cache.values[..., : position + 1] @ weights  # (B, h, head_channels, 1)
        return self.out(mixed.view(batch_size, self.channels))


def attention_positions(num_layers: int, num_attention_layers: int) -> list[int]:
    """Indices of the gated layers followed by an attention block, evenly spaced and ending with the last layer:
    40 layers, 8 attention layers → after layers 5, 10, ..., 40 (indices 4, 9, ..., 39; §3.2 "every five")."""
    if num_attention_layers == 0:
        return []
    if not 0 < num_attention_layers <= num_layers:
        raise ValueError(f"num_attention_layers must be in 0..num_layers={num_layers}, got {num_attention_layers}")
    every = num_layers // num_attention_layers
    return [every * (k + 1) - 1 + num_layers - every * num_attention_layers for k in range(num_attention_layers)]


def sinusoidal_positions(shape: tuple[int, ...], channels: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(N = prod(shape), channels) float position code in generation order (last axis fastest).

    Each axis gets an equal share of the channels (rounded down to even) as sin/cos pairs at geometric
    frequencies; leftover channels are zero. Computed for any size, never stored: one prior serves any volume.
    """
    per_axis = 2 * (channels // (2 * len(shape)))
    half = per_axis // 2
    frequencies = torch.exp(-math.log(10000.0) * torch.arange(half, device=device, dtype=torch.float32) / max(1, half))
    grids = torch.meshgrid(*[torch.arange(size, device=device, dtype=torch.float32) for size in shape], indexing="ij")
    codes = []
    for grid in grids:
        angles = grid.reshape(-1, 1) * frequencies  # (N, half)
        codes += [angles.sin(), angles.cos()]
    padding = torch.zeros(math.prod(shape), channels - len(shape) * per_axis, device=device)
    return torch.cat(codes + [padding], dim=1).to(dtype)


class AttentionBlock(nn.Module):
    """Residual causal self-attention over a flattened volume, after a gated layer of either prior.

    Queries: LayerNorm(features + position code); keys/values: LayerNorm([features + position code, code
    embeddings shifted by one position]). Output: features + dropout(attention). The shifted embeddings give
    every position direct access to every earlier code (PixelSNAIL), closing what the convolutions leave out.
    """

    def __init__(self, channels: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.query_norm = nn.LayerNorm(channels)
        self.key_value_norm = nn.LayerNorm(2 * channels)
        self.attention = CausalSelfAttention(channels, num_heads, key_value_channels=2 * channels)
        self.dropout = nn.Dropout(dropout)

    def sources(self, features: torch.Tensor, shifted_embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features (B, M, C) with the position code already added, shifted_embeddings (B, M, C) → (query source
        (B, M, C), key/value source (B, M, 2C)); shared by `forward` and cached sampling (M = 1 works too)."""
        return self.query_norm(features), self.key_value_norm(torch.cat([features, shifted_embeddings], dim=-1))

    def forward(
        self, horizontal: torch.Tensor, shifted_embeddings: torch.Tensor, positions: torch.Tensor
    ) -> torch.Tensor:
        """horizontal (B, C, T, H, W) float; shifted_embeddings (B, N, C); positions (N, C) → (B, C, T, H, W)."""
        num_slices, height, width = horizontal.shape[2:]
        features = rearrange(horizontal, "b c t h w -> b (t h w) c")
        attended = self.attention(*self.sources(features + positions, shifted_embeddings))
        attended = rearrange(self.dropout(attended), "b (t h w) c -> b c t h w", t=num_slices, h=height, w=width)
        return horizontal + attended
