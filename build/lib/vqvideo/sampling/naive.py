"""The plain autoregressive sampler (paper §3.2): a full pass of the prior's gated PixelCNN per sampled position.

The conditioning stacks run once per volume (top) or once per slice (bottom) in `Sampler`; only
`pixelcnn.logits(...)` runs per position, over the whole volume. Exact and simple, and the reference the
cached sampler is tested against; at paper shapes it takes hours per video (`make bench-sample`).
"""

from __future__ import annotations

from itertools import islice

import torch
from torch import nn

from vqvideo.sampling.base import ChooseCode, Sampler, generation_order


class NaiveSampler(Sampler):
    """Samples with one full `pixelcnn.logits` call per position (no caching).

    max_positions: stop after this many positions of a volume (the rest stay 0): times a prefix of the plain
        sampler, whose full run at paper shapes takes hours (`make bench-sample`). None = sample everything.
    """

    name = "naive"

    def __init__(self, progress: bool = False, max_positions: int | None = None) -> None:
        super().__init__(progress)
        self.max_positions = max_positions

    @torch.no_grad()
    def generate(self, pixelcnn: nn.Module, cond: torch.Tensor, choose_code: ChooseCode, desc: str) -> torch.Tensor:
        """Codes (B, T, H, W) int64; cond (B, C_cond, T, H, W) float."""
        batch_size, _, num_slices, height, width = cond.shape
        codes = torch.zeros((batch_size, num_slices, height, width), dtype=torch.long, device=cond.device)
        for t, y, x in islice(generation_order(num_slices, height, width, self.progress, desc), self.max_positions):
            logits = pixelcnn.logits(codes, cond)  # (B, K, T, H, W)
            codes[:, t, y, x] = choose_code(t, y, x, logits[:, :, t, y, x])
        return codes
