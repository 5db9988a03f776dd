"""Causal self-attention: causality by gradients, and incremental steps equal the full forward."""

import pytest
import torch

from vqvideo.models.attention import CausalSelfAttention, shift_one_position


def _attention(key_value_channels=None):
    torch.manual_seed(0)
    return CausalSelfAttention(channels=16, num_heads=4, key_value_channels=key_value_channels).eval()


def test_output_at_n_depends_exactly_on_positions_up_to_n():
    attention = _attention()
    source = torch.randn(2, 10, 16, requires_grad=True)
    for n in range(10):
        (grad,) = torch.autograd.grad(attention(source)[:, n].sum(), source)
        reach = grad.abs().sum(dim=(0, 2))
        assert torch.all(reach[n + 1 :] == 0), f"position {n} sees the future"
        assert torch.all(reach[: n + 1] > 0), f"position {n} misses part of its past"


def test_shifted_inputs_are_strictly_causal():
    attention = _attention(key_value_channels=8)
    features = torch.randn(1, 6, 16)
    inputs = torch.randn(1, 6, 8, requires_grad=True)
    for n in range(6):
        (grad,) = torch.autograd.grad(attention(features, shift_one_position(inputs))[:, n].sum(), inputs)
        reach = grad.abs().sum(dim=(0, 2))
        assert torch.all(reach[n:] == 0) and torch.all(reach[:n] > 0)


@pytest.mark.parametrize("block", [1, 3])
def test_steps_equal_full_forward(block):
    attention = _attention(key_value_channels=24)
    queries, key_values = torch.randn(3, 12, 16), torch.randn(3, 12, 24)
    expected = attention(queries, key_values)
    cache = attention.new_cache(batch_size=3, max_positions=12)
    outputs = [
        attention.step(queries[:, start : start + block], key_values[:, start : start + block], cache, start)
        for start in range(0, 12, block)
    ]
    torch.testing.assert_close(torch.cat(outputs, dim=1), expected, rtol=1e-5, atol=1e-6)


def test_step_past_cache_end_is_a_clear_error():
    attention = _attention()
    cache = attention.new_cache(batch_size=1, max_positions=2)
    with pytest.raises(ValueError, match="cache holds 2"):
        attention.step(torch.randn(1, 2, 16), None, cache, start=1)


def test_heads_must_divide_channels():
    with pytest.raises(ValueError, match="divisible"):
        CausalSelfAttention(channels=10, num_heads=4)
