"""Sampling options, logit filtering and the inverse-CDF draw shared by every sampler."""

import pytest
import torch

from vqvideo.sampling.base import SamplingOptions, draw_uniforms, filter_logits, pick_codes


def test_top_k_one_is_argmax():
    logits = torch.randn(64, 512)
    uniforms = draw_uniforms((64,), torch.Generator().manual_seed(0))
    codes = pick_codes(logits, uniforms, SamplingOptions(top_k=1))
    assert torch.equal(codes, logits.argmax(-1))


def test_nucleus_keeps_smallest_set_reaching_mass():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    kept = torch.isfinite(filter_logits(probs.log(), SamplingOptions(top_p=0.7)))
    assert kept.tolist() == [[True, True, False, False]]
    kept_all = torch.isfinite(filter_logits(probs.log(), SamplingOptions(top_p=1.0)))
    assert kept_all.all()


def test_draws_follow_the_distribution():
    probs = torch.tensor([0.1, 0.6, 0.3])
    n = 20000
    uniforms = draw_uniforms((n,), torch.Generator().manual_seed(1))
    codes = pick_codes(probs.log().expand(n, 3), uniforms, SamplingOptions())
    freq = torch.bincount(codes, minlength=3).double() / n
    assert torch.allclose(freq, probs.double(), atol=0.015)


def test_low_temperature_concentrates_on_mode():
    logits = torch.tensor([[1.0, 2.0, 1.5]]).expand(1000, 3)
    uniforms = draw_uniforms((1000,), torch.Generator().manual_seed(2))
    codes = pick_codes(logits, uniforms, SamplingOptions(temperature=0.01))
    assert (codes == 1).all()


def test_same_seed_same_uniforms_different_seed_differs():
    a = draw_uniforms((4, 3), torch.Generator().manual_seed(5))
    b = draw_uniforms((4, 3), torch.Generator().manual_seed(5))
    c = draw_uniforms((4, 3), torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("kwargs", [{"temperature": 0.0}, {"top_k": 0}, {"top_p": 1.5}])
def test_invalid_options_are_refused(kwargs):
    with pytest.raises(ValueError):
        SamplingOptions(**kwargs)
