"""The cached sampler, for both priors (they share the GatedPixelCNN): per-position logits equal teacher forcing, and
codes are bit-identical to the naive sampler's, at tiny, demo and paper latent shapes.

Each test runs for the top prior (its future top slices as one volume) and the bottom prior (one bottom slice, a
volume of T = 1, conditioned on the top codes and the past slices), through the same `Sampler` methods
`vqvideo predict` calls.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
import torch
from tiny_models import (bottom_batch, bottom_prior, experiment_code_spec, tiny_bottom_config, tiny_code_spec,
                         tiny_top_config, top_batch, top_prior, yaml_prior_config)

from vqvideo.cache.manifest import CodeSpec
from vqvideo.sampling import CachedSampler, NaiveSampler, get_sampler
from vqvideo.sampling.base import SamplingOptions, pick_codes, sampling_uniforms
from vqvideo.sampling.cached import PixelCNNCache, teacher_forced_logits

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
PRIORS = ["top", "bottom"]


@dataclass
class Case:
    """One prior with its latent facts, and the codes it is given."""

    kind: str  # "top" | "bottom"
    prior: torch.nn.Module
    spec: CodeSpec
    batch: dict[str, torch.Tensor]

    def teacher_forcing(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(codes (B, T, H, W) of the true volume, cond (B, C, T, H, W)): the top prior's future slices, or the
        bottom prior's slice `slice_index` (T = 1)."""
        batch = self.batch
        if self.kind == "top":
            cond = self.prior.condition(batch["given_top"], batch["given_bottom"], self.spec.num_future_top_slices)
            return batch["target_top"], cond
        slice_index, bottom = batch["slice_index"], batch["bottom_codes"]
        cond = self.prior.condition(batch["top_codes"], bottom, slice_index)[:, :, None]
        return bottom[torch.arange(len(bottom)), slice_index][:, None], cond

    def sample(self, sampler, options: SamplingOptions, seed: int, num_bottom_slices: int | None = None):
        """The sampler's codes from the given codes: future top slices (B, Tp, Ht, Wt), or the bottom volume
        (B, Tgb + num_bottom_slices, Hb, Wb) whose first Tgb slices are the given ones."""
        generator = torch.Generator().manual_seed(seed)
        batch = self.batch
        if self.kind == "top":
            return sampler.sample_top(self.prior, batch["given_top"], batch["given_bottom"],
                                      self.spec.num_future_top_slices, options, generator)
        num_given = self.spec.given_bottom_shape[0]
        num_slices = num_bottom_slices or self.spec.num_future_bottom_slices
        return sampler.sample_bottom(self.prior, batch["top_codes"], batch["bottom_codes"][:, :num_given], num_slices,
                                     options, generator)

    def first_sampled_volume(self, sampled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(codes (B, T, H, W), cond) of the first volume a sample generated: all future top slices, or the first
        future bottom slice conditioned on what preceded it."""
        if self.kind == "top":
            return sampled, self.teacher_forcing()[1]
        num_given = self.spec.given_bottom_shape[0]
        slice_index = torch.full((len(sampled),), num_given)
        cond = self.prior.condition(self.batch["top_codes"], sampled, slice_index)[:, :, None]
        return sampled[:, num_given : num_given + 1], cond


def make_case(kind: str, spec: CodeSpec, batch_size: int = 2, randomize: bool = False, double: bool = False,
              device: str = "cpu", config=None, **overrides) -> Case:
    """A prior at `spec` (`config`, or the tiny architecture with `overrides`), in eval mode."""
    torch.manual_seed(0)
    if kind == "top":
        prior = top_prior(config or tiny_top_config(**overrides), spec)
        batch = top_batch(spec, batch_size, seed=1)
    else:
        prior = bottom_prior(config or tiny_bottom_config(**overrides), spec)
        batch = bottom_batch(spec, batch_size, seed=1)
    if randomize:  # random biases too, so no term can hide behind a zero init
        for parameter in prior.parameters():
            parameter.data.normal_(0, 0.3)
    prior = (prior.double() if double else prior).to(device).eval()  # dropout layers present, off in eval mode
    return Case(kind, prior, spec, {key: value.to(device) for key, value in batch.items()})


def tiny_case(kind: str, **overrides) -> Case:
    """5 gated layers, 2 attention layers, dropout 0.3 (off in eval), random weights, float64."""
    structure = dict(num_layers=5, num_attention_layers=2, dropout=0.3, hidden_channels=8, residual_channels=8)
    spec = tiny_code_spec(top_shape=(4, 3, 4), bottom_shape=(8, 6, 8), given_top_shape=(1, 3, 4),
                          given_bottom_shape=(2, 6, 8))
    return make_case(kind, spec, batch_size=3, randomize=True, double=True, **(structure | overrides))


def demo_case(kind: str, device: str = "cpu", **kwargs) -> Case:
    """The demo config's architecture (experiments/demo/*_prior.yaml) at the demo latent facts, untrained."""
    config = yaml_prior_config("demo", f"{kind}_prior")
    return make_case(kind, experiment_code_spec("demo"), config=config, device=device, **kwargs)


def demo_shaped_case(kind: str) -> Case:
    """The demo's latent shapes with its architecture's depth, filter, attention placement (and window) at a narrow
    width."""
    narrow = dict(hidden_channels=8, residual_channels=8, num_heads=2, cond_embed_dim=4, cond_channels=8,
                  cond_residual_channels=4)
    narrow |= dict(cond_downsampled_channels=8) if kind == "top" else dict(cond_top_channels=8, cond_window_channels=8)
    config = replace(yaml_prior_config("demo", f"{kind}_prior"), **narrow)
    return make_case(kind, experiment_code_spec("demo"), config=config)


def paper_shaped_case(kind: str, batch_size: int = 1, **overrides) -> Case:
    """The paper's latent shapes (top 4×32×32 with 1 given slice, bottom 8×64×64 with 2) at a narrow width,
    attention on (and dropout, off in eval mode)."""
    narrow = dict(hidden_channels=4, residual_channels=4, num_layers=5, num_attention_layers=1, num_heads=2,
                  cond_channels=4, num_cond_blocks=1, dropout=0.5)
    spec = replace(experiment_code_spec("kinetics600_256"), num_top_codes=16, num_bottom_codes=16)
    return make_case(kind, spec, batch_size=batch_size, **(narrow | overrides))


def assert_cached_logits_equal_teacher_forcing(case: Case, rtol: float, atol: float) -> None:
    """The cached sampler fed the true codes sees, at every position and in generation order, the teacher-forced
    logits of that position."""
    codes, cond = case.teacher_forcing()
    with torch.no_grad():
        expected = case.prior.pixelcnn.logits(codes, cond)  # (B, K, T, H, W)
    seen = torch.zeros_like(codes, dtype=torch.bool)

    def teacher(t, y, x, logits):
        assert seen.flatten(1).sum(1).eq((t * codes.shape[2] + y) * codes.shape[3] + x).all(), "out of order"
        torch.testing.assert_close(logits, expected[:, :, t, y, x], rtol=rtol, atol=atol)
        seen[:, t, y, x] = True
        return codes[:, t, y, x]

    assert torch.equal(CachedSampler().generate(case.prior.pixelcnn, cond, teacher, "test"), codes)
    assert seen.all()
    torch.testing.assert_close(teacher_forced_logits(case.prior.pixelcnn, codes, cond), expected, rtol=rtol,
                               atol=atol)


@pytest.mark.parametrize("kind", PRIORS)
def test_cached_logits_equal_teacher_forcing_with_attention_and_dropout_in_eval(kind):
    assert_cached_logits_equal_teacher_forcing(tiny_case(kind), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", PRIORS)
def test_cached_logits_equal_teacher_forcing_at_demo_config(kind, device):
    case = demo_case(kind, device, randomize=True, double=True)
    assert_cached_logits_equal_teacher_forcing(case, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("options", [SamplingOptions(), SamplingOptions(temperature=0.7, top_k=4, top_p=0.9)],
                         ids=["plain", "filtered"])
@pytest.mark.parametrize("kind", PRIORS)
def test_cached_codes_bit_identical_to_naive(kind, options):
    case = tiny_case(kind)
    naive = case.sample(NaiveSampler(), options, seed=3)
    cached = case.sample(get_sampler("cached"), options, seed=3)
    assert torch.equal(cached, naive)
    if kind == "bottom":
        assert torch.equal(cached[:, :2], case.batch["bottom_codes"][:, :2])  # the given slices come back as given


def test_cached_codes_bit_identical_to_naive_with_the_bottom_priors_extra_paths():
    case = tiny_case("bottom", cond_top_direct=True, cond_logits=True, copy_previous_slice=True)
    options = SamplingOptions(temperature=0.7, top_k=4, top_p=0.9)
    assert torch.equal(case.sample(get_sampler("cached"), options, seed=4), case.sample(NaiveSampler(), options, seed=4))


def test_cached_codes_bit_identical_to_naive_with_the_top_priors_extra_paths():
    case = tiny_case("top", cond_per_slice=True, cond_logits=True)
    options = SamplingOptions(temperature=0.7, top_k=4, top_p=0.9)
    assert torch.equal(case.sample(get_sampler("cached"), options, seed=4), case.sample(NaiveSampler(), options, seed=4))


@pytest.mark.parametrize("kind", PRIORS)
def test_cached_codes_bit_identical_to_naive_at_demo_shapes(kind):
    """The demo's latent shapes in float32, as `vqvideo predict` samples them: the top prior at the demo config, the
    bottom prior at its depth, filter and attention placement but narrow, for one future slice (the naive sampler
    costs a full pass per position; later slices run the same loop)."""
    options = SamplingOptions(temperature=0.8, top_k=20, top_p=0.9)
    case = demo_case(kind) if kind == "top" else demo_shaped_case(kind)
    naive = case.sample(NaiveSampler(), options, seed=5, num_bottom_slices=1)
    cached = case.sample(CachedSampler(), options, seed=5, num_bottom_slices=1)
    assert torch.equal(cached, naive)


def assert_sample_is_the_full_forward_sample(case: Case, seed: int, positions: list[int]) -> None:
    """Codes the cached sampler drew equal those a full forward per position draws: (1) the cached path's logits
    equal one teacher-forced pass over the sample, (2) those logits, with the same uniforms, pick these codes (by
    causality they are the logits a full forward sees when that position is sampled), and (3) literally, as the
    naive sampler does it (codes so far, zeros ahead), at the flattened `positions` (row and slice boundaries)."""
    options = SamplingOptions()
    codes, cond = case.first_sampled_volume(case.sample(CachedSampler(), options, seed, num_bottom_slices=1))
    pixelcnn = case.prior.pixelcnn
    with torch.no_grad():
        expected = pixelcnn.logits(codes, cond)  # (B, K, T, H, W)
    torch.testing.assert_close(teacher_forced_logits(pixelcnn, codes, cond), expected, rtol=1e-4, atol=1e-4)
    uniforms = sampling_uniforms(*codes.shape, torch.Generator().manual_seed(seed), "cpu")
    per_position = expected.permute(0, 2, 3, 4, 1).reshape(-1, pixelcnn.num_codes)  # (B·T·H·W, K)
    redrawn = pick_codes(per_position, uniforms.flatten(), options)
    assert torch.equal(redrawn.view_as(codes), codes)
    flat_codes = codes.flatten(1)
    num_slices, height, width = codes.shape[1:]
    for position in positions:
        partial = torch.zeros_like(flat_codes)
        partial[:, :position] = flat_codes[:, :position]
        t, rest = divmod(position, height * width)
        with torch.no_grad():
            logits = pixelcnn.logits(partial.view_as(codes), cond)[:, :, t, rest // width, rest % width]
        picked = pick_codes(logits, uniforms.flatten(1)[:, position], options)
        assert torch.equal(picked, flat_codes[:, position]), f"position {position}"


def test_paper_latent_shapes_top_codes_match_full_forward():
    """3 sampled 32×32 slices from 1 given top and 2 given bottom slices (§3.2), small width."""
    case = paper_shaped_case("top", num_layers=4, num_attention_layers=2, hidden_channels=16, residual_channels=16,
                             cond_channels=16)
    assert_sample_is_the_full_forward_sample(case, 7, [0, 1, 31, 32, 33, 1023, 1024, 1025, 2047, 2048, 3071])


def test_paper_latent_shapes_bottom_codes_match_full_forward():
    """The first future 64×64 bottom slice given 2 bottom slices and all 4×32×32 top codes (Table 3), small width."""
    case = paper_shaped_case("bottom")
    assert_sample_is_the_full_forward_sample(case, 7, [0, 1, 63, 64, 65, 2047, 4032, 4095])


@pytest.mark.slow
@pytest.mark.parametrize("kind", PRIORS)
def test_cached_codes_bit_identical_to_full_forward_sampling_at_paper_depth(kind):
    """Table 4 depth and attention placement at the paper's latent shapes, two clips; a full pass costs ~0.5 s, so
    the naive loop (one full logits pass per position, the same uniforms) runs over the first two rows only."""
    depth = {"top": dict(num_layers=40, num_attention_layers=8), "bottom": dict(num_layers=20, num_attention_layers=4)}
    case = paper_shaped_case(kind, batch_size=2, **depth[kind])
    options = SamplingOptions()
    codes, cond = case.first_sampled_volume(case.sample(CachedSampler(), options, 7, num_bottom_slices=1))
    width = codes.shape[3]
    uniforms = sampling_uniforms(*codes.shape, torch.Generator().manual_seed(7), "cpu")
    naive = torch.zeros_like(codes)
    with torch.no_grad():
        for y in range(2):
            for x in range(width):
                logits = case.prior.pixelcnn.logits(naive, cond)
                naive[:, 0, y, x] = pick_codes(logits[:, :, 0, y, x], uniforms[:, 0, y, x], options)
    assert torch.equal(codes[:, 0, :2], naive[:, 0, :2])


@pytest.mark.parametrize("kind", PRIORS)
def test_cached_sampling_needs_eval_mode(kind):
    case = tiny_case(kind)
    _, cond = case.teacher_forcing()
    with pytest.raises(ValueError, match="eval"):
        PixelCNNCache(case.prior.pixelcnn.train(), cond)
    case.prior.train()
    with pytest.raises(ValueError, match="eval"):
        case.sample(CachedSampler(), SamplingOptions(), seed=0)
