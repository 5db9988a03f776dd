"""The naive sampler and the sampler registry: raster order, causality, greedy = teacher-forced argmax.

Stand-in priors here are causal by construction (a position's logits depend only on codes before it in
raster order), so they test the sampler, not a prior. tests/test_predict.py runs the real priors.
"""

import sys

import pytest
import torch
from einops import rearrange
from torch import nn

import vqvideo.sampling.naive as naive
from vqvideo.sampling import NaiveSampler, SamplingOptions, get_sampler

NUM_CODES = 7


class RasterCausalTopPrior(nn.Module):
    """logits(t, y, x) from the code one raster position earlier (volume order t, y, x) plus conditioning."""

    def __init__(self, num_codes: int = NUM_CODES):
        super().__init__()
        self.embedding = nn.Embedding(num_codes + 1, 16)  # + a start token
        self.cond_embedding = nn.Embedding(num_codes, 16)
        self.output = nn.Linear(16, num_codes)
        self.num_codes = num_codes
        self.condition_calls = 0

    def condition(self, cond_top, cond_bottom, num_slices):
        self.condition_calls += 1
        return self.cond_embedding(cond_top).mean(dim=(1, 2, 3)) + self.cond_embedding(cond_bottom).mean(dim=(1, 2, 3))

    def logits(self, target_top, cond_features):
        batch, slices, height, width = target_top.shape
        flat = rearrange(target_top, "b t h w -> b (t h w)")
        previous = torch.cat([flat.new_full((batch, 1), self.num_codes), flat[:, :-1]], dim=1)
        hidden = torch.tanh(self.embedding(previous) + cond_features[:, None])  # (B, N, 16)
        logits = self.output(hidden) * 3
        return rearrange(logits, "b (t h w) k -> b k t h w", t=slices, h=height, w=width)

    def forward(self, target_top, cond_top, cond_bottom):
        return self.logits(target_top, self.condition(cond_top, cond_bottom, target_top.shape[1]))


class RecordingBottomPrior(nn.Module):
    """Causal within a slice (previous raster code) and across slices (sum of the past slices' codes)."""

    def __init__(self, num_codes: int = NUM_CODES):
        super().__init__()
        self.top = RasterCausalTopPrior(num_codes)
        self.calls = []

    def condition(self, top_codes, bottom_codes, slice_index):
        self.calls.append((slice_index.clone(), bottom_codes.clone()))
        past = torch.stack([bottom_codes[b, :s].float().sum() for b, s in enumerate(slice_index.tolist())])
        return self.top.cond_embedding(top_codes).mean(dim=(1, 2, 3)) + torch.sin(past)[:, None]

    def logits(self, slice_codes, cond):
        return self.top.logits(slice_codes[:, None], cond)[:, :, 0]  # (B, K, Hb, Wb)


def given_codes(batch=2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    cond_top = torch.randint(NUM_CODES, (batch, 1, 3, 3), generator=generator)
    cond_bottom = torch.randint(NUM_CODES, (batch, 2, 4, 4), generator=generator)
    return cond_top, cond_bottom


def test_greedy_top_sample_is_its_own_teacher_forced_argmax():
    prior, (cond_top, cond_bottom) = RasterCausalTopPrior(), given_codes()
    codes = NaiveSampler().sample_top(prior, cond_top, cond_bottom, 3, SamplingOptions(top_k=1), None)
    assert codes.shape == (2, 3, 3, 3) and codes.dtype == torch.long
    assert torch.equal(codes, prior(codes, cond_top, cond_bottom).argmax(1))
    assert prior.condition_calls == 2  # once for the sample, once in the check above


def test_greedy_bottom_sample_is_its_own_teacher_forced_argmax():
    prior, (_, cond_bottom) = RecordingBottomPrior(), given_codes()
    top_codes = torch.randint(NUM_CODES, (2, 4, 3, 3))
    bottom = NaiveSampler().sample_bottom(prior, top_codes, cond_bottom, 3, SamplingOptions(top_k=1), None)
    assert bottom.shape == (2, 5, 4, 4) and torch.equal(bottom[:, :2], cond_bottom)
    for index in range(2, 5):
        slice_index = torch.full((2,), index)
        logits = prior.logits(bottom[:, index], prior.condition(top_codes, bottom, slice_index))
        assert torch.equal(bottom[:, index], logits.argmax(1))


def test_bottom_slices_are_conditioned_once_each_on_finished_past_slices():
    prior, (_, cond_bottom) = RecordingBottomPrior(), given_codes()
    top_codes = torch.randint(NUM_CODES, (2, 4, 3, 3))
    bottom = NaiveSampler().sample_bottom(prior, top_codes, cond_bottom, 3, SamplingOptions(), None)
    assert [call[0].tolist() for call in prior.calls] == [[2, 2], [3, 3], [4, 4]]
    for slice_index, seen in prior.calls:
        index = int(slice_index[0])
        assert torch.equal(seen[:, :index], bottom[:, :index])  # the past is final when a slice starts
        assert not seen[:, index:].any()  # nothing of the present or future leaks in


def test_earlier_codes_ignore_later_randomness(monkeypatch):
    """Changing the uniforms from raster position p on changes nothing before p (sampling is causal)."""
    prior, (cond_top, cond_bottom) = RasterCausalTopPrior(), given_codes()
    uniforms = torch.rand((2, 3, 3, 3), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    changed = uniforms.clone()
    changed.view(2, -1)[:, 13:] = torch.rand((2, 14), generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    results = []
    for draws in (uniforms, changed):
        monkeypatch.setattr(naive, "sampling_uniforms", lambda *args, draws=draws: draws)
        results.append(NaiveSampler().sample_top(prior, cond_top, cond_bottom, 3, SamplingOptions(), None))
    first, second = (r.reshape(2, -1) for r in results)
    assert torch.equal(first[:, :13], second[:, :13])
    assert not torch.equal(first[:, 13:], second[:, 13:])


def test_same_generator_seed_same_codes_other_seed_differs():
    prior, (cond_top, cond_bottom) = RasterCausalTopPrior(), given_codes()

    def sample(seed):
        generator = torch.Generator().manual_seed(seed)
        return NaiveSampler().sample_top(prior, cond_top, cond_bottom, 3, SamplingOptions(), generator)

    assert torch.equal(sample(0), sample(0))
    assert not torch.equal(sample(0), sample(1))


def test_registry():
    assert isinstance(get_sampler("naive"), NaiveSampler)
    with pytest.raises(ValueError, match="unknown sampler"):
        get_sampler("fast")


def test_cached_sampler_loads_its_halves_or_says_what_is_missing(monkeypatch):
    sampler = get_sampler("cached")
    assert callable(sampler.sample_top) and callable(sampler.sample_bottom)
    monkeypatch.setitem(sys.modules, "vqvideo.sampling.cached_top", None)  # as if the file were absent
    with pytest.raises(ValueError, match="cached_top.py.*--sampler naive"):
        get_sampler("cached")


def tiny_real_priors(num_codes=8):
    from vqvideo.models.bottom_prior import BottomPrior
    from vqvideo.models.top_prior import TopPrior

    torch.manual_seed(0)
    top = TopPrior(num_codes=num_codes, num_cond_bottom_codes=num_codes, channels=16, residual_channels=16,
                   num_layers=2, attention_every=1, num_heads=2, cond_embed_channels=8, cond_downsampled_channels=8,
                   cond_channels=8, cond_residual_channels=8, num_cond_res_blocks=1, dropout=0.5)
    bottom = BottomPrior(num_codes=num_codes, num_top_codes=num_codes, slice_shape=(4, 4), hidden_channels=16,
                         residual_channels=16, num_layers=2, num_attention_layers=1, num_heads=2, top_embed_dim=8,
                         top_channels=8, bottom_embed_dim=8, window_channels=8, cond_channels=8,
                         cond_residual_channels=8, num_cond_blocks=1, dropout=0.5)
    return top.eval(), bottom.eval()


def test_greedy_samples_of_the_real_priors_equal_their_teacher_forced_argmax():
    """Sampling runs the priors' training path: greedy codes are the argmax of one teacher-forced pass."""
    top_prior, bottom_prior = tiny_real_priors()
    generator = torch.Generator().manual_seed(0)
    cond_top = torch.randint(8, (2, 1, 2, 2), generator=generator)
    cond_bottom = torch.randint(8, (2, 2, 4, 4), generator=generator)
    greedy, sampler = SamplingOptions(top_k=1), NaiveSampler()
    future_top = sampler.sample_top(top_prior, cond_top, cond_bottom, 3, greedy, None)
    assert torch.equal(future_top, top_prior(future_top, cond_top, cond_bottom).argmax(1))
    top_codes = torch.cat([cond_top, future_top], 1)  # (2, 4, 2, 2)
    bottom = sampler.sample_bottom(bottom_prior, top_codes, cond_bottom, 6, greedy, None)
    for index in range(2, 8):
        logits = bottom_prior(bottom, top_codes, torch.full((2,), index))
        assert torch.equal(bottom[:, index], logits.argmax(1))
