"""Cached bottom-prior sampler (vqvideo/sampling/cached_bottom.py): per-position logits equal teacher forcing,
codes bit-identical to the naive sampler, at the demo config and at the paper's latent shapes (small width)."""

import pytest
import torch
import yaml

from vqvideo.models.bottom_prior import BottomPrior
from vqvideo.sampling.base import SamplingOptions, pick_codes
from vqvideo.sampling.cached_bottom import generate_slice, sample_bottom, teacher_forced_logits
from vqvideo.sampling.naive import NaiveSampler, raster_positions, sampling_uniforms

DEMO = yaml.safe_load(open("experiments/demo/bottom_prior.yaml"))["model"]["init_args"]
PRIOR_KEYS = set(BottomPrior.__init__.__code__.co_varnames) - {"self"}


def build(num_codes=11, num_top_codes=5, slice_shape=(6, 8), **overrides):
    torch.manual_seed(0)
    config = dict(
        hidden_channels=8, residual_channels=8, num_layers=5, num_attention_layers=2, num_heads=2, kernel_size=5,
        top_embed_dim=4, top_channels=6, bottom_embed_dim=4, window_channels=6, cond_channels=8,
        cond_residual_channels=4, num_cond_blocks=1, dropout=0.3,
    )  # fmt: skip
    config.update(overrides)
    prior = BottomPrior(num_codes=num_codes, num_top_codes=num_top_codes, slice_shape=slice_shape, **config)
    for parameter in prior.parameters():  # random biases too, so no term can hide behind a zero init
        parameter.data.normal_(0, 0.3)
    return prior.double().eval()  # dropout layers present, off in eval mode


def demo_prior():
    return build(DEMO["num_codes"], DEMO["num_top_codes"], tuple(DEMO["bottom_shape"][1:]),
                 **{k: v for k, v in DEMO.items() if k in PRIOR_KEYS and k not in ("num_codes", "num_top_codes")})  # fmt: skip


def random_volumes(prior, batch, top_shape, bottom_shape, seed=1):
    generator = torch.Generator().manual_seed(seed)
    top = torch.randint(0, prior.conditioning.top.embedding.num_embeddings, (batch, *top_shape), generator=generator)
    bottom = torch.randint(0, prior.num_codes, (batch, *bottom_shape), generator=generator)
    return top, bottom


def assert_cached_logits_equal_teacher_forcing(prior, top, bottom, slice_index):
    cond = prior.condition(top, bottom, slice_index)
    truth = bottom[torch.arange(len(bottom)), slice_index]  # (B, H, W)
    expected = prior.logits(truth, cond)  # (B, K, H, W)
    seen = torch.zeros_like(truth, dtype=torch.bool)

    def teacher(row, column, logits):
        torch.testing.assert_close(logits, expected[:, :, row, column], rtol=1e-9, atol=1e-9)
        seen[:, row, column] = True
        return truth[:, row, column]

    assert torch.equal(generate_slice(prior, cond, teacher), truth)
    assert seen.all()


def test_teacher_forced_logits_helper_matches_the_full_pass():
    prior = build()
    top, bottom = random_volumes(prior, 2, (4, 3, 4), (8, 6, 8))
    cond = prior.condition(top, bottom, torch.tensor([3, 4]))
    codes = bottom[torch.arange(2), torch.tensor([3, 4])]
    torch.testing.assert_close(teacher_forced_logits(prior, codes, cond), prior.logits(codes, cond))


def test_cached_logits_equal_teacher_forcing_with_attention_and_dropout_in_eval():
    prior = build()
    top, bottom = random_volumes(prior, 3, (4, 3, 4), (8, 6, 8))
    assert_cached_logits_equal_teacher_forcing(prior, top, bottom, torch.tensor([2, 5, 7]))


def test_cached_logits_equal_teacher_forcing_at_demo_config():
    prior = demo_prior()
    top, bottom = random_volumes(prior, 2, tuple(DEMO["top_shape"]), tuple(DEMO["bottom_shape"]))
    assert_cached_logits_equal_teacher_forcing(prior, top, bottom, torch.tensor([2, 6]))


@pytest.mark.parametrize("options", [SamplingOptions(), SamplingOptions(temperature=0.7, top_k=4, top_p=0.9)])
def test_cached_codes_bit_identical_to_naive(options):
    prior = build()
    top, bottom = random_volumes(prior, 2, (4, 3, 4), (8, 6, 8))
    given = bottom[:, :2]
    naive = NaiveSampler().sample_bottom(prior, top, given, 6, options, torch.Generator().manual_seed(3))
    cached = sample_bottom(prior, top, given, 6, options, torch.Generator().manual_seed(3))
    assert torch.equal(cached, naive)
    assert torch.equal(cached[:, :2], given)


def demo_shaped_prior(**overrides):
    """The demo config's latent shapes, depth, filter and attention layout at a narrow width."""
    structure = {k: DEMO[k] for k in ("num_layers", "num_attention_layers", "kernel_size", "window")}
    return build(DEMO["num_codes"], DEMO["num_top_codes"], tuple(DEMO["bottom_shape"][1:]), **{**structure, **overrides})


def test_cached_codes_bit_identical_to_naive_at_demo_shapes():
    prior = demo_shaped_prior()
    top, bottom = random_volumes(prior, 2, tuple(DEMO["top_shape"]), tuple(DEMO["bottom_shape"]))
    given = bottom[:, : DEMO["num_given_slices"]]
    # one future slice keeps the naive sampler (a full pass per position) fast; later slices run the same loop
    naive = NaiveSampler().sample_bottom(prior, top, given, 1, SamplingOptions(), torch.Generator().manual_seed(5))
    cached = sample_bottom(prior, top, given, 1, SamplingOptions(), torch.Generator().manual_seed(5))
    assert torch.equal(cached, naive)


def paper_shaped_prior(num_layers=5, num_attention_layers=1):
    """The paper's 64×64 bottom slices and 32×32 top codes (Table 3) at a narrow width."""
    return build(num_codes=16, num_top_codes=16, slice_shape=(64, 64), hidden_channels=4, residual_channels=4,
                 num_layers=num_layers, num_attention_layers=num_attention_layers, num_heads=2, cond_channels=4,
                 num_cond_blocks=1)  # fmt: skip


def test_cached_logits_equal_teacher_forcing_at_paper_latent_shapes():
    prior = paper_shaped_prior()
    top, bottom = random_volumes(prior, 1, (4, 32, 32), (8, 64, 64))
    assert_cached_logits_equal_teacher_forcing(prior, top, bottom, torch.tensor([4]))


@pytest.mark.slow
def test_cached_codes_bit_identical_to_full_forward_sampling_at_paper_latent_shapes():
    # Table 4 depth and attention placement at the paper's shapes; a full pass costs ~0.5 s here, so the naive
    # sampler's loop (vqvideo/sampling/naive.py: condition once, one full logits pass per position, the same
    # uniforms) runs over the first two rows of the slice only
    prior = paper_shaped_prior(num_layers=20, num_attention_layers=4)
    top, bottom = random_volumes(prior, 2, (4, 32, 32), (8, 64, 64))
    given, options = bottom[:, :2], SamplingOptions()
    cached = sample_bottom(prior, top, given, 1, options, torch.Generator().manual_seed(7))
    uniforms = sampling_uniforms(2, 1, 64, 64, torch.Generator().manual_seed(7), "cpu")
    with torch.no_grad():
        cond = prior.condition(top, bottom, torch.tensor([2, 2]))
        slice_codes = torch.zeros((2, 64, 64), dtype=torch.long)
        for y, x in raster_positions(2, 64):
            logits = prior.logits(slice_codes, cond)
            slice_codes[:, y, x] = pick_codes(logits[:, :, y, x], uniforms[:, 0, y, x], options)
    assert torch.equal(cached[:, 2, :2], slice_codes[:, :2])
