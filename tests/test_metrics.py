"""The unigram baseline the priors log next to their bits/code."""

import math

import torch

from vqvideo.lit.metrics import UnigramBits


def test_unigram_bits_is_entropy_of_counts():
    metric = UnigramBits(num_codes=8)
    metric.update(torch.tensor([[0, 0, 1, 1]]))
    metric.update(torch.tensor([2, 3, 2, 3]))
    assert math.isclose(metric.compute().item(), 2.0, rel_tol=1e-6)  # four codes, equally likely
    metric.reset()
    metric.update(torch.zeros(5, dtype=torch.long))
    assert metric.compute().item() == 0.0


def test_state_is_not_saved_in_checkpoints():
    assert UnigramBits(num_codes=4).state_dict() == {}
