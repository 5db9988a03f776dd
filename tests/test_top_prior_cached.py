"""Cached top sampler: per-position logits equal teacher forcing; codes bit-identical to full-forward sampling."""

from pathlib import Path

import pytest
import torch
import yaml

from vqvideo.lit.top_prior_module import TopPriorModule
from vqvideo.models.top_prior import TopPrior
from vqvideo.sampling import get_sampler
from vqvideo.sampling.base import SamplingOptions, pick_codes
from vqvideo.sampling.cached_top import TopPriorCache, sample_top, teacher_forced_logits
from vqvideo.sampling.naive import NaiveSampler, sampling_uniforms

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def demo_prior() -> TopPrior:
    """The demo config's prior (dropout 0.1 and 2 attention layers), untrained, in eval mode."""
    args = yaml.safe_load((EXPERIMENTS / "demo" / "top_prior.yaml").read_text())["model"]["init_args"]
    torch.manual_seed(0)
    return TopPriorModule(**args).prior.eval()


def paper_shaped_prior() -> TopPrior:
    """Paper latent shapes (given 1×32×32 top, 2×64×64 bottom) at a tiny width, dropout and attention on."""
    torch.manual_seed(0)
    return TopPrior(
        channels=16, residual_channels=16, num_layers=4, attention_every=2, num_heads=2, dropout=0.5,
        cond_embed_channels=8, cond_downsampled_channels=16, cond_channels=16, cond_residual_channels=8,
        num_cond_res_blocks=1,
    ).eval()  # fmt: skip


def given_codes(prior: TopPrior, batch_size: int, height: int, width: int, seed: int = 0, device: str = "cpu"):
    generator = torch.Generator().manual_seed(seed)
    stack = prior.conditioning
    cond_top = torch.randint(0, prior.num_codes, (batch_size, stack.num_top_slices, height, width), generator=generator)
    cond_bottom = torch.randint(
        0, stack.bottom_embedding.num_embeddings, (batch_size, stack.num_bottom_slices, 2 * height, 2 * width),
        generator=generator,
    )  # fmt: skip
    return cond_top.to(device), cond_bottom.to(device)


@pytest.mark.parametrize("device", DEVICES)
def test_cached_logits_equal_teacher_forcing_at_demo_config(device):
    prior = demo_prior().to(device)
    cond_top, cond_bottom = given_codes(prior, 2, 8, 8, device=device)
    target = torch.randint(0, prior.num_codes, (2, 3, 8, 8), generator=torch.Generator().manual_seed(1)).to(device)
    with torch.no_grad():
        cond = prior.condition(cond_top, cond_bottom, 3)
        expected = prior.logits(target, cond)
    torch.testing.assert_close(teacher_forced_logits(prior, target, cond), expected, rtol=1e-4, atol=1e-4)


def test_codes_bit_identical_to_naive_sampler_at_demo_config():
    options = SamplingOptions(temperature=0.8, top_k=20, top_p=0.9)
    prior = demo_prior()
    cond_top, cond_bottom = given_codes(prior, 2, 8, 8)
    naive = NaiveSampler().sample_top(prior, cond_top, cond_bottom, 3, options, torch.Generator().manual_seed(5))
    sampler = get_sampler("cached")
    cached = sampler.sample_top(prior, cond_top, cond_bottom, 3, options, torch.Generator().manual_seed(5))
    assert torch.equal(cached, naive)


def test_paper_latent_shapes_logits_and_codes_match_full_forward():
    """3 sampled 32×32 slices from 1 given top and 2 given bottom slices (§3.2), small width."""
    prior = paper_shaped_prior()
    cond_top, cond_bottom = given_codes(prior, 1, 32, 32)
    codes = sample_top(prior, cond_top, cond_bottom, 3, SamplingOptions(), torch.Generator().manual_seed(7))
    assert codes.shape == (1, 3, 32, 32)
    with torch.no_grad():
        cond = prior.condition(cond_top, cond_bottom, 3)
        expected = prior.logits(codes, cond)  # (1, K, 3, 32, 32): one teacher-forced pass over the sample
    torch.testing.assert_close(teacher_forced_logits(prior, codes, cond), expected, rtol=1e-4, atol=1e-4)
    # full-forward sampling picks these codes: by causality the teacher-forced logits at a position are the
    # ones a full forward sees when that position is sampled
    uniforms = sampling_uniforms(1, 3, 32, 32, torch.Generator().manual_seed(7), "cpu")
    per_position = expected.permute(0, 2, 3, 4, 1).reshape(-1, prior.num_codes)  # (B·T·H·W, K)
    redrawn = pick_codes(per_position, uniforms.flatten(), SamplingOptions())
    assert torch.equal(redrawn.view_as(codes), codes)
    # and literally, as the naive sampler does it (codes so far, zeros ahead), at row and slice boundaries
    flat_codes = codes.flatten(1)
    for position in (0, 1, 31, 32, 33, 1023, 1024, 1025, 2047, 2048, 3071):
        partial = torch.zeros_like(flat_codes)
        partial[:, :position] = flat_codes[:, :position]
        t, rest = divmod(position, 1024)
        with torch.no_grad():
            logits = prior.logits(partial.view_as(codes), cond)[:, :, t, rest // 32, rest % 32]
        picked = pick_codes(logits, uniforms.flatten(1)[:, position], SamplingOptions())
        assert torch.equal(picked, flat_codes[:, position])


def test_cached_sampling_needs_eval_mode():
    prior = demo_prior().train()
    cond_top, cond_bottom = given_codes(prior, 1, 8, 8)
    with pytest.raises(ValueError, match="eval"):
        TopPriorCache(prior, prior.condition(cond_top, cond_bottom, 3))
