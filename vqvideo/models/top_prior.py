"""Top prior: the gated PixelCNN over the future top slices, conditioned on the given frames (§3.2, Tables 4–6).

It models the future top codes (paper: 3 slices of 32×32) given the codes of the given frames encoded alone
(through the conditioning stack of Tables 5/6, `TopConditioningStack`). Generation order: slice after slice;
within a slice rows top to bottom, columns left to right. The network is the 3D `GatedPixelCNN` that the
bottom prior also uses; here its convolutions reach `kernel_size // 2 + 1` slices back in time and its
attention spans the whole future volume. The logits at a position depend only on codes earlier in that order
(tests check it by gradients).

Two options not in the paper, the top-level counterparts of the bottom prior's: `cond_per_slice` gives each
predicted slice its own conditioning features (`TopConditioningStack`), and `cond_logits` adds a 1×1×1 head from
the conditioning features straight to the logits, so that what the given frames say reaches the logits without
passing the gated layers. Measured in the code world of benchmarks/top_paths.py (docs/sprites.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vqvideo.models.pixelcnn import GatedPixelCNN
from vqvideo.models.top_conditioning import TopConditioningStack


@dataclass(frozen=True)
class TopPriorConfig:
    """Architecture of the top prior; defaults are the paper's (Tables 4–6).

    Args:
        hidden_channels: Table 4 hidden units.
        residual_channels: Table 4 residual units (width of each gated layer's gated branch).
        num_layers: Table 4 layers.
        num_attention_layers: Table 4 attention layers (evenly spaced: every 5th of 40 layers, §3.2).
        num_heads: Table 4 attention heads.
        kernel_size: Table 4 conv filter size (odd); the convolutions also reach kernel_size // 2 past slices.
        dropout: Table 4 dropout (gated branches and attention).
        cond_embed_dim: embedding width of the given codes in the conditioning stack (not in the paper).
        cond_downsampled_channels: Table 6, width after the stride-2 conv (256).
        cond_channels: Table 5 hidden units (512).
        cond_residual_channels: Table 5 residual units (128).
        num_cond_blocks: Table 5 layers (4 residual blocks).
        cond_per_slice: each predicted slice gets its own conditioning features instead of one tile (not in the
            paper; needs the number of predicted slices, a latent fact from the code cache).
        cond_logits: a 1×1×1 head from the conditioning features adds to the logits (not in the paper).
    """

    hidden_channels: int = 512
    residual_channels: int = 1024
    num_layers: int = 40
    num_attention_layers: int = 8
    num_heads: int = 8
    kernel_size: int = 3
    dropout: float = 0.5
    cond_embed_dim: int = 64
    cond_downsampled_channels: int = 256
    cond_channels: int = 512
    cond_residual_channels: int = 128
    num_cond_blocks: int = 4
    cond_per_slice: bool = False
    cond_logits: bool = False


class TopPrior(nn.Module):
    """Conditional prior over the future top codes.

    config: the architecture. Latent facts (from the code cache's `code_spec`): num_top_codes (the codebook it
    predicts), num_bottom_codes, num_given_top_slices / num_given_bottom_slices (paper 1 and 2),
    num_future_top_slices (paper 3; read only with `cond_per_slice`).
    """

    def __init__(
        self,
        config: TopPriorConfig,
        num_top_codes: int,
        num_bottom_codes: int,
        num_given_top_slices: int,
        num_given_bottom_slices: int,
        num_future_top_slices: int | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.num_codes = num_top_codes
        if config.cond_per_slice and num_future_top_slices is None:
            raise ValueError("cond_per_slice needs num_future_top_slices (the code cache's predicted top slices)")
        self.conditioning = TopConditioningStack(
            num_top_codes, num_bottom_codes, num_given_top_slices, num_given_bottom_slices, config.cond_embed_dim,
            config.cond_downsampled_channels, config.cond_channels, config.cond_residual_channels,
            config.num_cond_blocks, num_future_top_slices if config.cond_per_slice else None,
        )  # fmt: skip
        self.pixelcnn = GatedPixelCNN(
            num_top_codes, config.hidden_channels, config.residual_channels, config.cond_channels, config.num_layers,
            config.num_attention_layers, config.num_heads, config.kernel_size, config.kernel_size // 2 + 1,
            config.dropout,
        )  # fmt: skip
        self.cond_head = nn.Conv3d(config.cond_channels, num_top_codes, 1) if config.cond_logits else None

    def condition(self, given_top: torch.Tensor, given_bottom: torch.Tensor, num_slices: int) -> torch.Tensor:
        """given_top (B, Tg, Ht, Wt) int64, given_bottom (B, Tgb, Hb, Wb) int64
        → cond (B, cond_channels, num_slices, Ht, Wt) float."""
        return self.conditioning(given_top, given_bottom, num_slices)

    def logits(self, target_top: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """target_top (B, Tp, Ht, Wt) int64 (teacher forcing), cond (B, C_cond, Tp, Ht, Wt) from `condition`
        → logits (B, num_top_codes, Tp, Ht, Wt) float."""
        return self.pixelcnn.logits(target_top, cond) + self.logit_bonus(cond)

    def logit_bonus(self, cond: torch.Tensor) -> torch.Tensor | float:
        """cond (B, C_cond, Tp, Ht, Wt) float from `condition` → (B, num_top_codes, Tp, Ht, Wt) float to add to the
        PixelCNN's logits (0.0 without `cond_logits`). Samplers add it at each position they generate."""
        return 0.0 if self.cond_head is None else self.cond_head(cond)

    def forward(self, target_top: torch.Tensor, given_top: torch.Tensor, given_bottom: torch.Tensor) -> torch.Tensor:
        """target_top (B, Tp, Ht, Wt) int64 (teacher forcing), given_top (B, Tg, Ht, Wt), given_bottom
        (B, Tgb, Hb, Wb) int64 → logits (B, num_top_codes, Tp, Ht, Wt) float."""
        return self.logits(target_top, self.condition(given_top, given_bottom, target_top.shape[1]))
