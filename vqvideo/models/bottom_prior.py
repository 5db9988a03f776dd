"""The bottom prior (paper §3.2, Tables 4 and 8): the gated PixelCNN over one bottom slice, conditioned at every
layer by the 3D conditioning stack of `bottom_conditioning.py` (top codes + a window of past bottom slices).

Bottom slices are generated one after another; within a slice, codes are generated in raster order. The
network is the `GatedPixelCNN` of the top prior run over a volume of one slice (T = 1, one time tap: the
paper's "2D PixelCNN"), so both priors share every layer, the attention blocks and the cached sampler. The
logits of slice n at (i, j) depend on
- the codes of slice n only at raster positions before (i, j) (gated stacks + causal attention),
- bottom slices n-w .. n-1 only (the conditioning window), never on slices >= n,
- all top codes (they are sampled before any bottom slice).
`condition(...)` runs once per slice, `logits(...)` once per teacher-forced pass.

With `copy_previous_slice` (not in the paper) every logit of slice n at (i, j) gets a learned bonus for the code
slice n-1 has at (i, j): most codes repeat from slice to slice, and a small prior trained on a few hundred clips
overfits long before it learns to copy through its conditioning stack (measured, docs/prediction-quality.md).
The bonus starts at log(num_codes), so an untrained prior already puts about half its mass on copying.

With `cond_logits` (not in the paper) a 1×1 head maps the conditioning features straight to logits, added to the
PixelCNN's: what the top codes and the past slices say about a cell reaches its logits without passing the gated
layers, whose causal context (a still background all around) outweighs a rare moving object for many steps.
With `cond_top_direct` the conditioning stack adds each cell's own parent top code (`ParentCode`). Both were
measured in the code world of benchmarks/code_motion.py (docs/sprites.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import math

import torch
import torch.nn.functional as F
from torch import nn

from vqvideo.models.bottom_conditioning import BottomConditioning, ParentCode
from vqvideo.models.pixelcnn import GatedPixelCNN


@dataclass(frozen=True)
class BottomPriorConfig:
    """Architecture of the bottom prior; defaults are the paper's (Tables 4 and 8).

    Args:
        hidden_channels: Table 4 hidden units.
        residual_channels: Table 4 residual units (width of each gated layer's gated branch).
        num_layers: Table 4 layers.
        num_attention_layers: Table 4 attention layers (after layers 5, 10, 15, 20: "every five", §3.2).
        num_heads: Table 4 attention heads.
        kernel_size: Table 4 conv filter size (odd).
        dropout: Table 4 dropout.
        window: past bottom slices in the conditioning (§3.2 text: 2; Table 8 shows 4); a power of two.
        cond_embed_dim: embedding width of the conditioning codes (not in the paper).
        cond_top_channels: Table 8, width of the upsampled top codes (1024).
        cond_window_channels: width of the past-slice branch (not in the paper).
        cond_channels: Table 8 hidden units (1024).
        cond_residual_channels: bottleneck of each conditioning residual block (not in the paper).
        num_cond_blocks: Table 8 residual blocks (20).
        copy_previous_slice: add a learned per-code bonus to the logit of the previous slice's code at the same
            position (a copy path; not in the paper).
        cond_top_direct: the conditioning stack also reads each cell's parent top code alone (not in the paper).
        cond_logits: a 1×1 head from the conditioning features adds to the logits (not in the paper).
    """

    hidden_channels: int = 512
    residual_channels: int = 1024
    num_layers: int = 20
    num_attention_layers: int = 4
    num_heads: int = 8
    kernel_size: int = 5
    dropout: float = 0.0
    window: int = 2
    cond_embed_dim: int = 64
    cond_top_channels: int = 1024
    cond_window_channels: int = 256
    cond_channels: int = 1024
    cond_residual_channels: int = 256
    num_cond_blocks: int = 20
    copy_previous_slice: bool = False
    cond_top_direct: bool = False
    cond_logits: bool = False


class BottomPrior(nn.Module):
    """Logits of one bottom slice given the top codes and the past bottom slices.

    config: the architecture. Latent facts (from the code cache's `code_spec`): num_top_codes, num_bottom_codes
    (the codebook it predicts), top_to_bottom_stride: (t, h, w) factor from the top grid to the bottom grid.
    """

    def __init__(
        self,
        config: BottomPriorConfig,
        num_top_codes: int,
        num_bottom_codes: int,
        top_to_bottom_stride: tuple[int, int, int],
    ) -> None:
        super().__init__()
        self.config = config
        self.num_codes = num_bottom_codes
        self.conditioning = BottomConditioning(
            num_top_codes, num_bottom_codes, tuple(top_to_bottom_stride), config.window, config.cond_embed_dim,
            config.cond_top_channels, config.cond_window_channels, config.cond_channels,
            config.cond_residual_channels, config.num_cond_blocks,
        )  # fmt: skip
        if config.cond_top_direct:
            self.conditioning.parent = ParentCode(
                num_top_codes, config.cond_embed_dim, config.cond_channels, tuple(top_to_bottom_stride)
            )
        self.pixelcnn = GatedPixelCNN(
            num_bottom_codes, config.hidden_channels, config.residual_channels, config.cond_channels,
            config.num_layers, config.num_attention_layers, config.num_heads, config.kernel_size, 1, config.dropout,
        )  # fmt: skip
        # gain of the copy bonus per previous code, in units of log(num_codes) so Adam's ~lr steps move it fast enough
        self.copy_gain = nn.Parameter(torch.ones(num_bottom_codes)) if config.copy_previous_slice else None
        self.cond_head = nn.Conv2d(config.cond_channels, num_bottom_codes, 1) if config.cond_logits else None

    @property
    def window(self) -> int:
        return self.config.window

    def condition(self, top_codes: torch.Tensor, bottom_codes: torch.Tensor, slice_index: torch.Tensor) -> torch.Tensor:
        """top_codes (B, Tt, Ht, Wt) int64; bottom_codes (B, Tb, Hb, Wb) int64, of which only slices
        slice_index-window .. slice_index-1 are read; slice_index (B,) int64 → cond (B, cond_channels, Hb, Wb)."""
        return self.conditioning(top_codes, bottom_codes, slice_index)

    def logits(self, slice_codes: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """slice_codes (B, Hb, Wb) int64 (teacher forcing: position (i, j) never sees itself or later codes);
        cond (B, cond_channels, Hb, Wb) float from `condition` → logits (B, num_bottom_codes, Hb, Wb) float."""
        return self.pixelcnn.logits(slice_codes[:, None], cond[:, :, None])[:, :, 0]

    def copy_bonus(self, previous_codes: torch.Tensor) -> torch.Tensor | float:
        """previous_codes (N, ...) int64: the previous slice's codes at the positions being predicted → (N, K, ...)
        float bonus to add to their logits (0.0 without `copy_previous_slice`)."""
        if self.copy_gain is None:
            return 0.0
        bonus = math.log(self.num_codes) * self.copy_gain[previous_codes]  # (N, ...)
        one_hot = F.one_hot(previous_codes, self.num_codes).movedim(-1, 1)  # (N, K, ...)
        return one_hot * bonus.unsqueeze(1)

    def logit_bonus(self, cond: torch.Tensor, previous_codes: torch.Tensor) -> torch.Tensor | float:
        """cond (B, cond_channels, Hb, Wb) float from `condition`; previous_codes (B, Hb, Wb) int64, slice n-1 →
        (B, num_bottom_codes, Hb, Wb) float to add to the PixelCNN's logits of slice n (0.0 with neither the
        copy path nor `cond_logits`). Samplers add it at each position they generate."""
        bonus = self.copy_bonus(previous_codes)
        return bonus if self.cond_head is None else self.cond_head(cond) + bonus

    def forward(self, bottom_codes: torch.Tensor, top_codes: torch.Tensor, slice_index: torch.Tensor) -> torch.Tensor:
        """bottom_codes (B, Tb, Hb, Wb) int64; top_codes (B, Tt, Ht, Wt) int64; slice_index (B,) int64 (>= 1) →
        logits (B, num_bottom_codes, Hb, Wb) float of slice `slice_index` (teacher-forced)."""
        rows = torch.arange(len(slice_index), device=bottom_codes.device)
        slice_codes = bottom_codes[rows, slice_index]
        cond = self.condition(top_codes, bottom_codes, slice_index)
        return self.logits(slice_codes, cond) + self.logit_bonus(cond, bottom_codes[rows, (slice_index - 1).clamp(min=0)])
