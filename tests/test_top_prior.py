"""Top prior model: exact causality and no blind spot (by gradients), shapes, paper config on meta, describe."""

import json
from pathlib import Path

import pytest
import torch
import yaml

from vqvideo.describe import main as describe_main
from vqvideo.lit.top_prior_module import TopPriorModule
from vqvideo.models.top_prior import TopPrior

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def config_init_args(experiment: str) -> dict:
    return yaml.safe_load((EXPERIMENTS / experiment / "top_prior.yaml").read_text())["model"]["init_args"]


def random_inputs(prior: TopPrior, batch_size: int, num_slices: int, height: int, width: int, seed: int = 0):
    """(target_top, cond_top, cond_bottom) int64 random codes for `prior`'s codebooks."""
    generator = torch.Generator().manual_seed(seed)
    stack = prior.conditioning
    target = torch.randint(0, prior.num_codes, (batch_size, num_slices, height, width), generator=generator)
    cond_top = torch.randint(0, prior.num_codes, (batch_size, stack.num_top_slices, height, width), generator=generator)
    num_bottom_codes = stack.bottom_embedding.num_embeddings
    cond_bottom = torch.randint(
        0, num_bottom_codes, (batch_size, stack.num_bottom_slices, 2 * height, 2 * width), generator=generator
    )
    return target, cond_top, cond_bottom


def input_reach(prior: TopPrior, num_slices: int, height: int, width: int) -> torch.Tensor:
    """(N, N) bool: [n, m] is True iff the logits at position n have a non-zero gradient w.r.t. the input
    embedding at position m (positions flattened in generation order). One backward pass: the same input is
    repeated N times along the batch and copy n back-propagates from position n only (samples are independent)."""
    target, cond_top, cond_bottom = random_inputs(prior, 1, num_slices, height, width)
    num_positions = num_slices * height * width
    embedded = prior.embed_codes(target).detach().repeat(num_positions, 1, 1, 1, 1).requires_grad_(True)
    cond = prior.condition(cond_top, cond_bottom, num_slices).repeat(num_positions, 1, 1, 1, 1)
    logits = prior.logits_from_embedding(embedded, cond).flatten(2)  # (N copies, K, N positions)
    weights = torch.randn(logits.shape[1], generator=torch.Generator().manual_seed(1))
    own_position = logits[torch.arange(num_positions), :, torch.arange(num_positions)]  # (N, K)
    (grad,) = torch.autograd.grad((own_position @ weights).sum(), embedded)
    return grad.abs().sum(dim=1).flatten(1) > 0


def tiny_prior(**overrides) -> TopPrior:
    args = dict(
        num_codes=16, num_cond_bottom_codes=8, channels=8, residual_channels=8, num_layers=3, attention_every=0,
        num_heads=2, dropout=0.0, cond_embed_channels=4, cond_downsampled_channels=8, cond_channels=8,
        cond_residual_channels=4, num_cond_res_blocks=1,
    )  # fmt: skip
    torch.manual_seed(0)
    return TopPrior(**(args | overrides)).eval()


def test_demo_config_is_exactly_causal_without_blind_spot():
    """Every position sees every earlier position and nothing at or after itself, at the demo config."""
    args = config_init_args("demo")
    torch.manual_seed(0)
    prior = TopPriorModule(**args).prior.eval()
    num_slices = args["top_shape"][0] - args["cond_top_shape"][0]
    reach = input_reach(prior, num_slices, *args["top_shape"][1:])
    earlier = torch.ones_like(reach).tril(diagonal=-1)
    assert not (reach & ~earlier).any(), "logits see their own position or the future"
    assert (reach | ~earlier).all(), f"blind spot: {(~reach & earlier).sum()} earlier positions unseen"


def test_convolutions_alone_are_causal_and_cover_a_slice():
    """Without attention: exact causality over slices, and the (kt, k, k) vertical kernel leaves no blind spot
    within a slice once num_layers + 1 >= width - 1 (a y–t-only vertical kernel would miss the upper right)."""
    reach = input_reach(tiny_prior(num_layers=3), 2, 5, 5)
    earlier = torch.ones_like(reach).tril(diagonal=-1)
    assert not (reach & ~earlier).any()
    first_slice = slice(0, 25)
    assert (reach | ~earlier)[first_slice, first_slice].all()


def test_logits_shape_and_position_independence_of_batch():
    prior = tiny_prior(attention_every=1)
    target, cond_top, cond_bottom = random_inputs(prior, 3, 2, 4, 6)
    logits = prior(target, cond_top, cond_bottom)
    assert logits.shape == (3, 16, 2, 4, 6)
    torch.testing.assert_close(prior(target[1:2], cond_top[1:2], cond_bottom[1:2]), logits[1:2], rtol=1e-4, atol=1e-5)


def test_bad_conditioning_shapes_are_clear_errors():
    prior = tiny_prior()
    target, cond_top, cond_bottom = random_inputs(prior, 1, 2, 4, 4)
    with pytest.raises(ValueError, match="twice the top resolution"):
        prior(target, cond_top, cond_bottom[:, :, :4, :4])
    with pytest.raises(ValueError, match="given top"):
        prior(target, cond_top.repeat(1, 2, 1, 1), cond_bottom)
    with pytest.raises(ValueError, match="num_slices"):
        prior.logits(target, prior.condition(cond_top, cond_bottom, 3))


def test_paper_config_builds_on_meta_with_paper_shapes():
    args = config_init_args("kinetics600_256")
    with torch.device("meta"):
        module = TopPriorModule(**args)
        logits = module.core(*module.example_inputs(batch_size=2))
    assert logits.shape == (2, 512, 3, 32, 32)
    assert len(module.prior.layers) == 40 and len(module.prior.attention_blocks) == 8  # Table 4
    assert module.prior.layers[0].vertical_conv.out_channels == 2 * 1024  # Table 4 residual units
    assert module.describe_info()["attention_after_layers"] == [5, 10, 15, 20, 25, 30, 35, 40]


def test_describe_reports_params_and_gflops(capsys):
    assert describe_main(["--config", str(EXPERIMENTS / "kinetics600_256" / "top_prior.yaml"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["model"].endswith("TopPriorModule")
    assert info["params"] > 100_000_000 and info["gflops_per_clip"] > 100
    assert info["predicted_shape"] == [3, 32, 32]
