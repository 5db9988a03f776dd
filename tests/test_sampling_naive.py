"""The naive sampler, the sampling of both priors it shares with every sampler (vqvideo/sampling/base.py), and the
sampler registry: generation order, causality, greedy = teacher-forced argmax.

Stand-in priors here are causal by construction (a position's logits depend only on codes before it in generation
order), so they test the sampler, not a prior; like the real priors they have `condition(...)` and a `pixelcnn` with
`logits(codes (B, T, H, W), cond (B, C, T, H, W))`. The last test runs the real priors.
"""

import pytest
import torch
from einops import rearrange, repeat
from tiny_models import bottom_prior, tiny_bottom_config, tiny_code_spec, tiny_top_config, top_prior
from torch import nn

import vqvideo.sampling.base as base
from vqvideo.sampling import SAMPLER_NAMES, CachedSampler, NaiveSampler, SamplingOptions, get_sampler

NUM_CODES, WIDTH = 7, 16


class RasterCausalPixelCNN(nn.Module):
    """logits(t, y, x) from the code one position earlier in generation order plus the conditioning there."""

    def __init__(self, num_codes: int = NUM_CODES):
        super().__init__()
        self.embedding = nn.Embedding(num_codes + 1, WIDTH)  # + a start token
        self.output = nn.Linear(WIDTH, num_codes)
        self.num_codes = num_codes

    def logits(self, codes, cond):
        batch, slices, height, width = codes.shape
        flat = rearrange(codes, "b t h w -> b (t h w)")
        previous = torch.cat([flat.new_full((batch, 1), self.num_codes), flat[:, :-1]], dim=1)
        hidden = torch.tanh(self.embedding(previous) + rearrange(cond, "b c t h w -> b (t h w) c"))
        logits = self.output(hidden) * 3
        return rearrange(logits, "b (t h w) k -> b k t h w", t=slices, h=height, w=width)


class RasterCausalTopPrior(nn.Module):
    def __init__(self, num_codes: int = NUM_CODES):
        super().__init__()
        self.pixelcnn = RasterCausalPixelCNN(num_codes)
        self.cond_embedding = nn.Embedding(num_codes, WIDTH)
        self.condition_calls = 0

    def condition(self, given_top, given_bottom, num_slices):
        """→ (B, WIDTH, num_slices, Ht, Wt): one vector per clip, tiled."""
        self.condition_calls += 1
        vector = self.cond_embedding(given_top).mean(dim=(1, 2, 3)) + self.cond_embedding(given_bottom).mean((1, 2, 3))
        return repeat(vector, "b c -> b c t h w", t=num_slices, h=given_top.shape[2], w=given_top.shape[3])

    def logit_bonus(self, cond):
        return 0.0

    def forward(self, target_top, given_top, given_bottom):
        return self.pixelcnn.logits(target_top, self.condition(given_top, given_bottom, target_top.shape[1]))


class RecordingBottomPrior(nn.Module):
    """Causal within a slice (previous raster code) and across slices (sum of the past slices' codes)."""

    def __init__(self, num_codes: int = NUM_CODES):
        super().__init__()
        self.pixelcnn = RasterCausalPixelCNN(num_codes)
        self.cond_embedding = nn.Embedding(num_codes, WIDTH)
        self.calls = []

    def condition(self, top_codes, bottom_codes, slice_index):
        """→ (B, WIDTH, Hb, Wb)."""
        self.calls.append((slice_index.clone(), bottom_codes.clone()))
        past = torch.stack([bottom_codes[b, :s].float().sum() for b, s in enumerate(slice_index.tolist())])
        vector = self.cond_embedding(top_codes).mean(dim=(1, 2, 3)) + torch.sin(past)[:, None]
        return repeat(vector, "b c -> b c h w", h=bottom_codes.shape[2], w=bottom_codes.shape[3])

    def logit_bonus(self, cond, previous_codes):
        return 0.0  # no copy path, no cond_logits

    def logits(self, slice_codes, cond):
        return self.pixelcnn.logits(slice_codes[:, None], cond[:, :, None])[:, :, 0]  # (B, K, Hb, Wb)


def given_codes(batch=2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    given_top = torch.randint(NUM_CODES, (batch, 1, 3, 3), generator=generator)
    given_bottom = torch.randint(NUM_CODES, (batch, 2, 4, 4), generator=generator)
    return given_top, given_bottom


def test_greedy_top_sample_is_its_own_teacher_forced_argmax():
    prior, (given_top, given_bottom) = RasterCausalTopPrior(), given_codes()
    codes = NaiveSampler().sample_top(prior, given_top, given_bottom, 3, SamplingOptions(top_k=1), None)
    assert codes.shape == (2, 3, 3, 3) and codes.dtype == torch.long
    assert torch.equal(codes, prior(codes, given_top, given_bottom).argmax(1))
    assert prior.condition_calls == 2  # once for the sample, once in the check above


def test_greedy_bottom_sample_is_its_own_teacher_forced_argmax():
    prior, (_, given_bottom) = RecordingBottomPrior(), given_codes()
    top_codes = torch.randint(NUM_CODES, (2, 4, 3, 3))
    bottom = NaiveSampler().sample_bottom(prior, top_codes, given_bottom, 3, SamplingOptions(top_k=1), None)
    assert bottom.shape == (2, 5, 4, 4) and torch.equal(bottom[:, :2], given_bottom)
    for index in range(2, 5):
        slice_index = torch.full((2,), index)
        logits = prior.logits(bottom[:, index], prior.condition(top_codes, bottom, slice_index))
        assert torch.equal(bottom[:, index], logits.argmax(1))


def test_bottom_slices_are_conditioned_once_each_on_finished_past_slices():
    prior, (_, given_bottom) = RecordingBottomPrior(), given_codes()
    top_codes = torch.randint(NUM_CODES, (2, 4, 3, 3))
    bottom = NaiveSampler().sample_bottom(prior, top_codes, given_bottom, 3, SamplingOptions(), None)
    assert [call[0].tolist() for call in prior.calls] == [[2, 2], [3, 3], [4, 4]]
    for slice_index, seen in prior.calls:
        index = int(slice_index[0])
        assert torch.equal(seen[:, :index], bottom[:, :index])  # the past is final when a slice starts
        assert not seen[:, index:].any()  # nothing of the present or future leaks in


def test_earlier_codes_ignore_later_randomness(monkeypatch):
    """Changing the uniforms from position p on changes nothing before p (sampling is causal)."""
    prior, (given_top, given_bottom) = RasterCausalTopPrior(), given_codes()
    uniforms = torch.rand((2, 3, 3, 3), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    changed = uniforms.clone()
    changed.view(2, -1)[:, 13:] = torch.rand((2, 14), generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    results = []
    for draws in (uniforms, changed):
        monkeypatch.setattr(base, "sampling_uniforms", lambda *args, draws=draws: draws)
        results.append(NaiveSampler().sample_top(prior, given_top, given_bottom, 3, SamplingOptions(), None))
    first, second = (r.reshape(2, -1) for r in results)
    assert torch.equal(first[:, :13], second[:, :13])
    assert not torch.equal(first[:, 13:], second[:, 13:])


def test_same_generator_seed_same_codes_other_seed_differs():
    prior, (given_top, given_bottom) = RasterCausalTopPrior(), given_codes()

    def sample(seed):
        generator = torch.Generator().manual_seed(seed)
        return NaiveSampler().sample_top(prior, given_top, given_bottom, 3, SamplingOptions(), generator)

    assert torch.equal(sample(0), sample(0))
    assert not torch.equal(sample(0), sample(1))


def test_max_positions_samples_a_prefix_of_the_same_codes():
    prior, (given_top, given_bottom) = RasterCausalTopPrior(), given_codes()
    full = NaiveSampler().sample_top(prior, given_top, given_bottom, 3, SamplingOptions(), torch.Generator())
    prefix = NaiveSampler(max_positions=10).sample_top(prior, given_top, given_bottom, 3, SamplingOptions(),
                                                       torch.Generator())
    assert torch.equal(prefix.flatten(1)[:, :10], full.flatten(1)[:, :10]) and not prefix.flatten(1)[:, 10:].any()


def test_registry():
    assert SAMPLER_NAMES == ("naive", "cached")
    assert isinstance(get_sampler("naive"), NaiveSampler) and isinstance(get_sampler("cached"), CachedSampler)
    assert get_sampler("cached", progress=True).progress
    with pytest.raises(ValueError, match="unknown sampler 'fast'"):
        get_sampler("fast")


def test_greedy_samples_of_the_real_priors_equal_their_teacher_forced_argmax():
    """Sampling runs the priors' training path: greedy codes are the argmax of one teacher-forced pass."""
    spec = tiny_code_spec(num_top_codes=8, num_bottom_codes=8)
    torch.manual_seed(0)
    top = top_prior(tiny_top_config(dropout=0.5), spec).eval()
    bottom = bottom_prior(tiny_bottom_config(dropout=0.5), spec).eval()
    generator = torch.Generator().manual_seed(0)
    given_top = torch.randint(8, (2, 1, 2, 2), generator=generator)
    given_bottom = torch.randint(8, (2, 2, 4, 4), generator=generator)
    greedy, sampler = SamplingOptions(top_k=1), NaiveSampler()
    future_top = sampler.sample_top(top, given_top, given_bottom, 3, greedy, None)
    assert torch.equal(future_top, top(future_top, given_top, given_bottom).argmax(1))
    top_codes = torch.cat([given_top, future_top], 1)  # (2, 4, 2, 2)
    bottom_codes = sampler.sample_bottom(bottom, top_codes, given_bottom, 6, greedy, None)
    for index in range(2, 8):
        logits = bottom(bottom_codes, top_codes, torch.full((2,), index))
        assert torch.equal(bottom_codes[:, index], logits.argmax(1))
