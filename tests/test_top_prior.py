"""Top prior model: exact causality and no blind spot (by gradients), shapes, paper config on meta, describe."""

import json

import pytest
import torch
from tiny_models import (EXPERIMENTS, experiment_code_spec, input_reach, tiny_top_config, top_batch, top_prior,
                         yaml_prior_config)

from vqvideo.commands.describe import main as describe_main
from vqvideo.lit.top_prior_module import TopPriorModule
from vqvideo.models.top_prior import TopPrior


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


def tiny_prior(**overrides) -> TopPrior:
    """16 top codes, 8 bottom codes, 1 given top and 2 given bottom slices."""
    torch.manual_seed(0)
    narrow = dict(hidden_channels=8, residual_channels=8, num_layers=3, num_attention_layers=0, cond_embed_dim=4,
                  cond_residual_channels=4)
    return TopPrior(tiny_top_config(**(narrow | overrides)), 16, 8, 1, 2).eval()


def test_demo_config_is_exactly_causal_without_blind_spot():
    """Every position sees every earlier position and nothing at or after itself, at the demo config."""
    spec = experiment_code_spec("demo")
    torch.manual_seed(0)
    prior = top_prior(yaml_prior_config("demo", "top_prior"), spec).eval()
    batch = top_batch(spec, batch_size=1)
    cond = prior.condition(batch["given_top"], batch["given_bottom"], spec.num_future_top_slices)
    reach = input_reach(prior.pixelcnn, batch["target_top"], cond)
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


def test_describe_reports_params_and_gflops(capsys):
    assert describe_main(["--config", str(EXPERIMENTS / "kinetics600_256" / "top_prior.yaml"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["model"].endswith("TopPriorModule")
    assert info["params"] > 100_000_000 and info["gflops_per_clip"] > 100
    assert info["predicted_shape"] == [3, 32, 32]
