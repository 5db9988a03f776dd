"""Metrics shared by the prior stages."""

from __future__ import annotations

import torch
from torchmetrics import Metric


class UnigramBits(Metric):
    """Entropy in bits of the empirical distribution of the codes seen: the unigram baseline a prior's
    bits/code must beat (what a model ignoring all context reaches at best on the same codes).

    update(codes): any shape, int64 in [0, num_codes). Counts are summed across DDP ranks by torchmetrics.
    """

    full_state_update = False

    def __init__(self, num_codes: int) -> None:
        super().__init__()
        self.num_codes = num_codes
        self.add_state("counts", default=torch.zeros(num_codes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, codes: torch.Tensor) -> None:
        self.counts += torch.bincount(codes.flatten(), minlength=self.num_codes)

    def compute(self) -> torch.Tensor:
        counts = self.counts.double()
        probs = counts[counts > 0] / counts.sum().clamp(min=1)
        return -(probs * probs.log2()).sum().float()
