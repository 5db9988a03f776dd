"""Top prior model: exact causality and no blind spot (by gradients), shapes, paper config on meta, describe."""

import json

import pytest
import torch
from tiny_models import (EXPERIMENTS, experiment_code_spec, input_reach, tiny_top_config, top_batch, top_prior,
                         yaml_prior_config)

from dataclasses import replace

from vqvideo.commands.describe import main as describe_main
from vqvideo.lit.top_prior_module import TopPriorModule
from vqvideo.models.top_prior import TopPrior
from vqvideo.sampling import get_sampler
from vqvideo.sampling.base import SamplingOptions

EXTRA_PATHS = [{}, {"cond_per_slice": True, "cond_logits": True}]


def random_inputs(prior: TopPrior, batch_size: int, num_slices: int, height: int, width: int, seed: int = 0):
    """(target_top, given_top, given_bottom) int64 random codes for `prior`'s codebooks."""
    generator = torch.Generator().manual_seed(seed)
    stack = prior.conditioning
    target = torch.randint(0, prior.num_codes, (batch_size, num_slices, height, width), generator=generator)
    given_top = torch.randint(0, prior.num_codes, (batch_size, stack.num_given_top_slices, height, width),
                              generator=generator)
    num_bottom_codes = stack.bottom_embedding.num_embeddings
    given_bottom = torch.randint(
        0, num_bottom_codes, (batch_size, stack.num_given_bottom_slices, 2 * height, 2 * width), generator=generator
    )
    return target, given_top, given_bottom


def tiny_prior(num_future_top_slices: int = 2, **overrides) -> TopPrior:
    """16 top codes, 8 bottom codes, 1 given top and 2 given bottom slices; num_future_top_slices: read only with
    cond_per_slice."""
    torch.manual_seed(0)
    narrow = dict(hidden_channels=8, residual_channels=8, num_layers=3, num_attention_layers=0, cond_embed_dim=4,
                  cond_residual_channels=4)
    return TopPrior(tiny_top_config(**(narrow | overrides)), 16, 8, 1, 2, num_future_top_slices).eval()


class WithBonus(torch.nn.Module):
    """The prior's whole logits (PixelCNN + logit bonus) behind the GatedPixelCNN interface `input_reach` uses."""

    def __init__(self, prior: TopPrior):
        super().__init__()
        self.prior = prior

    def embed_codes(self, codes):
        return self.prior.pixelcnn.embed_codes(codes)

    def logits_from_embedding(self, embedded, cond):
        return self.prior.pixelcnn.logits_from_embedding(embedded, cond) + self.prior.logit_bonus(cond)


@pytest.mark.parametrize("paths", EXTRA_PATHS, ids=["paper", "extra_paths"])
def test_demo_config_is_exactly_causal_without_blind_spot(paths):
    """Every position sees every earlier position and nothing at or after itself, at the demo config."""
    spec = experiment_code_spec("demo")
    torch.manual_seed(0)
    prior = top_prior(replace(yaml_prior_config("demo", "top_prior"), **paths), spec).eval()
    batch = top_batch(spec, batch_size=1)
    cond = prior.condition(batch["given_top"], batch["given_bottom"], spec.num_future_top_slices)
    reach = input_reach(WithBonus(prior), batch["target_top"], cond)
    earlier = torch.ones_like(reach).tril(diagonal=-1)
    assert reach.shape == (3 * 8 * 8, 3 * 8 * 8)  # the demo's 3 future 8×8 slices
    assert not (reach & ~earlier).any(), "logits see their own position or the future"
    assert (reach | ~earlier).all(), f"blind spot: {(~reach & earlier).sum()} earlier positions unseen"


def test_logits_shape_and_position_independence_of_batch():
    prior = tiny_prior(num_attention_layers=3)
    target, given_top, given_bottom = random_inputs(prior, 3, 2, 4, 6)
    logits = prior(target, given_top, given_bottom)
    assert logits.shape == (3, 16, 2, 4, 6)
    torch.testing.assert_close(prior(target[1:2], given_top[1:2], given_bottom[1:2]), logits[1:2],
                               rtol=1e-4, atol=1e-5)


def test_bad_conditioning_shapes_are_clear_errors():
    prior = tiny_prior()
    target, given_top, given_bottom = random_inputs(prior, 1, 2, 4, 4)
    with pytest.raises(ValueError, match="twice the top resolution"):
        prior(target, given_top, given_bottom[:, :, :4, :4])
    with pytest.raises(ValueError, match="given top"):
        prior(target, given_top.repeat(1, 2, 1, 1), given_bottom)
    with pytest.raises(ValueError, match="num_slices"):
        prior.logits(target, prior.condition(given_top, given_bottom, 3))


def test_paper_config_builds_on_meta_with_paper_shapes():
    spec = experiment_code_spec("kinetics600_256")
    assert (spec.top_shape, spec.given_top_shape, spec.given_bottom_shape) == ((4, 32, 32), (1, 32, 32), (2, 64, 64))
    with torch.device("meta"):
        module = TopPriorModule(prior=yaml_prior_config("kinetics600_256", "top_prior"), code_spec=spec)
        logits = module.core(*module.example_inputs(batch_size=2))
    assert logits.shape == (2, 512, 3, 32, 32)
    pixelcnn = module.prior.pixelcnn
    assert len(pixelcnn.layers) == 40 and len(pixelcnn.attention_blocks) == 8  # Table 4
    assert pixelcnn.layers[0].vertical_conv.out_channels == 2 * 1024  # Table 4 residual units
    assert module.describe_info()["attention_after_layers"] == [5, 10, 15, 20, 25, 30, 35, 40]


def test_paper_config_with_the_extra_paths_builds_on_meta_at_paper_shapes():
    spec = experiment_code_spec("kinetics600_256")
    config = replace(yaml_prior_config("kinetics600_256", "top_prior"), cond_per_slice=True, cond_logits=True)
    with torch.device("meta"):
        module = TopPriorModule(prior=config, code_spec=spec)
        target, given_top, given_bottom = module.example_inputs(batch_size=2)
        cond = module.prior.condition(given_top, given_bottom, 3)
        logits = module.core(target, given_top, given_bottom)
    assert cond.shape == (2, 512, 3, 32, 32) and logits.shape == (2, 512, 3, 32, 32)
    assert module.prior.conditioning.downsample.out_channels == 3 * 256  # Table 6's 256 per predicted slice
    assert module.prior.cond_head.out_channels == 512  # the codebook, from the cache's code spec


def test_per_slice_conditioning_tells_the_predicted_slices_apart():
    """Tiled (the paper), the slices away from the ends (which the 3×3×3 convolutions' zero padding reaches) get
    the same features; per slice, each its own, from its own share of the stride-2 convolution."""
    tiled, per_slice = tiny_prior(num_future_top_slices=6), tiny_prior(num_future_top_slices=6, cond_per_slice=True)
    _, given_top, given_bottom = random_inputs(per_slice, 2, 6, 4, 4)
    with torch.no_grad():
        tiled_cond = tiled.condition(given_top, given_bottom, 6)
        per_slice_cond = per_slice.condition(given_top, given_bottom, 6)
        torch.testing.assert_close(tiled_cond[:, :, 2], tiled_cond[:, :, 3])
        assert not torch.allclose(per_slice_cond[:, :, 2], per_slice_cond[:, :, 3])
        per_slice.conditioning.downsample.weight[: per_slice.config.cond_downsampled_channels] += 1.0  # slice 0's
        changed = (per_slice.condition(given_top, given_bottom, 6) - per_slice_cond).abs().sum(dim=(0, 1, 3, 4))
    assert changed[0] > 0 and changed[1] > 0 and changed[5] == 0  # slice 0, its neighbour, not a far slice
    with pytest.raises(ValueError, match="cond_per_slice"):
        per_slice.condition(given_top, given_bottom, 5)
    with pytest.raises(ValueError, match="num_future_top_slices"):
        TopPrior(tiny_top_config(cond_per_slice=True), 16, 8, 1, 2)


def test_cond_logits_add_a_head_of_the_conditioning_in_training_and_sampling():
    plain, headed = tiny_prior(), tiny_prior(cond_logits=True)
    headed.load_state_dict(plain.state_dict(), strict=False)  # same network; only cond_head is new
    target, given_top, given_bottom = random_inputs(plain, 2, 2, 3, 3)
    expected = headed.cond_head(headed.condition(given_top, given_bottom, 2))
    torch.testing.assert_close(headed(target, given_top, given_bottom) - plain(target, given_top, given_bottom),
                               expected)
    with torch.no_grad():
        headed.cond_head.weight.zero_()
        headed.cond_head.bias.fill_(-1e3)
        headed.cond_head.bias[5] = 0.0  # the head rules out every code but 5: sampling must give 5 everywhere
    for name in ("naive", "cached"):
        sampled = get_sampler(name).sample_top(headed, given_top, given_bottom, 2, SamplingOptions(),
                                               torch.Generator().manual_seed(0))
        assert (sampled == 5).all(), name


def test_describe_reports_params_and_gflops(capsys):
    assert describe_main(["--config", str(EXPERIMENTS / "kinetics600_256" / "top_prior.yaml"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["model"].endswith("TopPriorModule")
    assert info["params"] > 100_000_000 and info["gflops_per_clip"] > 100
    assert info["predicted_shape"] == [3, 32, 32]
