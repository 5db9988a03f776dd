"""Sampling runs in full float32 whatever the process's TF32 settings (a CUDA bug caught by reading, testable on CPU).

On CUDA, cuDNN convolutions run float32 inputs in TF32 by default (torch's `cudnn.conv` precision "tf32"), and
users often turn TF32 on for matmuls too. The naive sampler gets its logits from convolutions and the cached one
from matmuls; with TF32 on either side their logits differ by ~1e-3, codes flip at near-ties and the two samplers
no longer agree. Both samplers therefore sample inside `ieee_float32()`: these tests set the TF32 flags as a CUDA
process has them and check, from inside the prior's own calls, that sampling saw full float32, and that the
caller's flags are back afterwards.
"""

from __future__ import annotations

import pytest
import torch
from tiny_models import TINY_SPEC, bottom_prior, tiny_bottom_config, tiny_top_config, top_prior

from vqvideo.sampling import SAMPLER_NAMES, SamplingOptions, get_sampler
from vqvideo.sampling.base import _float32_flags, ieee_float32

TF32_VALUE = {"ieee": "tf32", False: True}  # the "TF32 allowed" value of each flag kind (new API, legacy API)


def current_flags() -> list:
    return [getattr(holder, name) for holder, name, _ in _float32_flags()]


@pytest.fixture
def tf32_everywhere():
    """The flags as a CUDA process with TF32 matmuls has them (cuDNN convolutions are TF32 by default)."""
    saved = current_flags()
    for holder, name, value in _float32_flags():
        setattr(holder, name, TF32_VALUE[value])
    yield current_flags()
    for (holder, name, _), value in zip(_float32_flags(), saved):
        setattr(holder, name, value)


def record_flags_during(prior) -> list:
    """Flags seen by every code embedding call (both samplers embed each chosen code)."""
    seen = []
    prior.pixelcnn.code_embedding.register_forward_pre_hook(lambda *_: seen.append(current_flags()))
    return seen


def ieee_values() -> list:
    return [value for _, _, value in _float32_flags()]


@pytest.mark.parametrize("sampler_name", SAMPLER_NAMES)
def test_top_sampling_sees_full_float32(sampler_name, tf32_everywhere):
    prior = top_prior(tiny_top_config()).eval()
    seen = record_flags_during(prior)
    generator = torch.Generator().manual_seed(0)
    given_top = torch.randint(TINY_SPEC.num_top_codes, (1, *TINY_SPEC.given_top_shape), generator=generator)
    given_bottom = torch.randint(TINY_SPEC.num_bottom_codes, (1, *TINY_SPEC.given_bottom_shape), generator=generator)
    get_sampler(sampler_name).sample_top(prior, given_top, given_bottom, 1, SamplingOptions(), generator)
    assert seen and all(flags == ieee_values() for flags in seen)
    assert current_flags() == tf32_everywhere != ieee_values()


@pytest.mark.parametrize("sampler_name", SAMPLER_NAMES)
def test_bottom_sampling_sees_full_float32(sampler_name, tf32_everywhere):
    prior = bottom_prior(tiny_bottom_config()).eval()
    seen = record_flags_during(prior)
    generator = torch.Generator().manual_seed(0)
    top_codes = torch.randint(TINY_SPEC.num_top_codes, (1, *TINY_SPEC.top_shape), generator=generator)
    given_bottom = torch.randint(TINY_SPEC.num_bottom_codes, (1, *TINY_SPEC.given_bottom_shape), generator=generator)
    get_sampler(sampler_name).sample_bottom(prior, top_codes, given_bottom, 1, SamplingOptions(), generator)
    assert seen and all(flags == ieee_values() for flags in seen)
    assert current_flags() == tf32_everywhere


def test_flags_are_restored_when_sampling_fails(tf32_everywhere):
    with pytest.raises(RuntimeError), ieee_float32():
        assert current_flags() == ieee_values()
        raise RuntimeError("a failing prior")
    assert current_flags() == tf32_everywhere
