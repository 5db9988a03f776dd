"""Causal multi-head self-attention over a flattened raster order, for both PixelCNN priors (§3.2).

The priors attend over a flattened volume (top prior: slices × rows × columns; bottom prior: rows × columns)
every few gated layers ("attention is applied every five layers", §3.2; as in Razavi et al. 2019 / PixelSNAIL).

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
