"""Causal self-attention: causality by gradients, incremental steps equal the full forward, placement after the
gated layers (§3.2 "every five layers") and the position code."""

import pytest
import torch

from vqvideo.models.attention import CausalSelfAttention, attention_positions, shift_one_position, sinusoidal_positions


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


def test_attention_layers_every_five_layers_as_in_the_paper():
    assert attention_positions(40, 8) == [4, 9, 14, 19, 24, 29, 34, 39]  # top prior, Table 4
    assert attention_positions(20, 4) == [4, 9, 14, 19]  # bottom prior, Table 4
    assert attention_positions(8, 2) == [3, 7]
    assert attention_positions(5, 0) == []
    with pytest.raises(ValueError, match="num_attention_layers"):
        attention_positions(2, 3)


def test_sinusoidal_positions_differ_per_position_and_pad_leftover_channels():
    codes = sinusoidal_positions((2, 3, 4), channels=14)
    assert codes.shape == (24, 14)
    assert len({tuple(row.tolist()) for row in codes}) == 24  # every position has its own code
    assert (codes[:, 12:] == 0).all()  # 14 channels: 4 per axis × 3 axes used, 2 left over
