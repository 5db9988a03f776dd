"""Bottom prior model invariants (paper §3.2, Table 8): causality by gradients, no blind spot, the conditioning's
slab upsampling equals upsampling the whole volume, the paper config builds on meta."""

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange
from tiny_models import experiment_code_spec, tiny_bottom_config, yaml_prior_config

from vqvideo.lit.bottom_prior_module import BottomPriorModule
from vqvideo.models.bottom_conditioning import TopUpsampler, upsampling_kernel
from vqvideo.models.bottom_prior import BottomPrior, BottomPriorConfig
from vqvideo.sampling import get_sampler
from vqvideo.sampling.base import SamplingOptions


NUM_CODES, NUM_TOP_CODES = 7, 5


def tiny_prior(num_layers=3, num_attention_layers=1, window=2, kernel_size=5, stride=(2, 2, 2), **paths):
    """paths: cond_top_direct / cond_logits / copy_previous_slice."""
    torch.manual_seed(0)
    config = tiny_bottom_config(
        hidden_channels=8, residual_channels=8, num_layers=num_layers, num_attention_layers=num_attention_layers,
        num_heads=2, kernel_size=kernel_size, window=window, cond_embed_dim=4, cond_top_channels=6,
        cond_window_channels=6, cond_channels=8, cond_residual_channels=4, num_cond_blocks=1, **paths,
    )  # fmt: skip
    return BottomPrior(config, NUM_TOP_CODES, NUM_CODES, top_to_bottom_stride=stride).double()


def random_codes(batch, bottom_shape, top_shape, seed=1):
    generator = torch.Generator().manual_seed(seed)
    bottom = torch.randint(0, NUM_CODES, (batch, *bottom_shape), generator=generator)
    top = torch.randint(0, NUM_TOP_CODES, (batch, *top_shape), generator=generator)
    return bottom, top


class EmbeddingGrads:
    """Captures d(output)/d(embedding output) for the given embedding modules (forward hooks)."""

    def __init__(self, **modules):
        self.outputs = {}
        self.handles = [module.register_forward_hook(self._hook(name)) for name, module in modules.items()]

    def remove(self):
        for handle in self.handles:
            handle.remove()

    def _hook(self, name):
        def hook(module, inputs, output):
            output.retain_grad()
            self.outputs[name] = output

        return hook

    def grad_norm(self, name):
        """Per code position: (B, ..., ) summed |grad| over the embedding channels."""
        return self.outputs[name].grad.abs().sum(-1)


def position_dependencies(prior, bottom, top, slice_index, position):
    """Gradient magnitudes of logits of slice n at `position` (y, x) w.r.t. every code embedding."""
    conditioning = prior.conditioning
    grads = EmbeddingGrads(slice=prior.pixelcnn.code_embedding, past=conditioning.past.embedding,
                           top=conditioning.top.embedding)
    logits = prior(bottom, top, slice_index)
    grads.remove()
    logits[:, :, position[0], position[1]].sum().backward()
    return grads


EXTRA_PATHS = [{}, {"cond_top_direct": True, "cond_logits": True, "copy_previous_slice": True}]


@pytest.mark.parametrize("paths", EXTRA_PATHS, ids=["table8", "extra_paths"])
@pytest.mark.parametrize("window", [2, 4])
def test_slice_depends_only_on_window_of_past_slices_and_sees_its_top_slice(window, paths):
    prior = tiny_prior(window=window, **paths)
    bottom, top = random_codes(2, (8, 6, 6), (4, 3, 3))
    for n in range(8):
        slice_index = torch.full((2,), n)
        grads = position_dependencies(prior, bottom, top, slice_index, (3, 2))
        per_slice = grads.grad_norm("past").sum((0, 2, 3))  # (Tb,)
        for m in range(8):
            if n - window <= m < n:
                assert per_slice[m] > 0, f"slice {n} ignores slice {m} inside its window"
            else:
                assert per_slice[m] == 0, f"slice {n} depends on slice {m} outside its window (or after it)"
        # top codes are all known before bottom sampling; slice n sees (at least) the top slice it lies in
        assert (grads.grad_norm("top")[:, n // 2] > 0).all(), f"slice {n} ignores its own top slice"


def test_per_sample_slice_index_gathers_that_samples_window():
    prior = tiny_prior()
    bottom, top = random_codes(3, (8, 6, 6), (4, 3, 3))
    slice_index = torch.tensor([2, 5, 7])
    batched = prior(bottom, top, slice_index)
    for b, n in enumerate(slice_index.tolist()):
        single = prior(bottom[b : b + 1], top[b : b + 1], torch.tensor([n]))
        torch.testing.assert_close(batched[b : b + 1], single)


def assert_raster_causal(prior, slice_shape, positions, expect_full_field):
    height, width = slice_shape
    bottom, top = random_codes(1, (8, height, width), (4, height // 2, width // 2))
    for y, x in positions:
        grads = position_dependencies(prior, bottom, top, torch.tensor([3]), (y, x))
        dependence = grads.grad_norm("slice")[0, 0]  # (H, W) over slice n's own codes (a volume of T = 1)
        raster = torch.arange(height * width).reshape(height, width)
        here = y * width + x
        assert (dependence[raster >= here] == 0).all(), f"({y},{x}) sees itself or a later position"
        if expect_full_field:
            blind = [(int(i), int(j)) for i, j in (dependence == 0).nonzero() if raster[i, j] < here]
            assert not blind, f"blind spot: ({y},{x}) does not see earlier positions {blind[:6]}"


def test_raster_causality_and_no_blind_spot_in_the_gated_stack_alone():
    # no attention: the gated stacks alone must reach every earlier position (6x6 needs ~3 layers at filter 5)
    prior = tiny_prior(num_layers=4, num_attention_layers=0)
    positions = [(y, x) for y in range(6) for x in range(6)]
    assert_raster_causal(prior, (6, 6), positions, expect_full_field=True)


@pytest.mark.parametrize("paths", EXTRA_PATHS, ids=["table8", "extra_paths"])
def test_raster_causality_at_demo_depth_with_attention(paths):
    # the demo config's depth and filter on its 16x16 slices (widths shrunk): exact causality, no blind spot
    prior = tiny_prior(num_layers=8, num_attention_layers=2, **paths)
    positions = [(0, 0), (0, 1), (1, 0), (5, 15), (8, 7), (15, 0), (15, 15)]
    assert_raster_causal(prior, (16, 16), positions, expect_full_field=True)


@pytest.mark.parametrize("stride", [1, 2, 3, 4])
def test_upsampling_kernel_multiplies_length_exactly(stride):
    kernel, padding = upsampling_kernel(stride)
    conv = torch.nn.ConvTranspose1d(1, 1, kernel, stride=stride, padding=padding)
    assert conv(torch.zeros(1, 1, 5)).shape[-1] == 5 * stride


@pytest.mark.parametrize("stride", [(2, 2, 2), (1, 2, 2), (2, 1, 1)])
def test_slab_upsampling_equals_upsampling_the_whole_volume(stride):
    torch.manual_seed(0)
    upsampler = TopUpsampler(NUM_TOP_CODES, 3, 4, stride).double()
    top = torch.randint(0, NUM_TOP_CODES, (2, 4, 3, 3))
    coarse = F.relu(upsampler.time_upsample(rearrange(upsampler.embedding(top), "b t h w c -> b c t h w")))
    space = upsampler.space_upsample  # the same conv with its ordinary temporal padding of 1
    middle = F.relu(F.conv_transpose3d(coarse, space.weight, space.bias, space.stride, (1, *space.padding[1:])))
    whole = F.conv3d(middle, upsampler.refine.weight, upsampler.refine.bias, padding=1)  # (B, C, Tb, Hb, Wb)
    assert whole.shape[2:] == (4 * stride[0], 3 * stride[1], 3 * stride[2])
    for n in range(whole.shape[2]):
        torch.testing.assert_close(upsampler(top, torch.full((2,), n)), whole[:, :, n])


def test_paper_defaults_build_on_meta_with_paper_shapes():
    with torch.device("meta"):
        prior = BottomPrior(BottomPriorConfig(), 512, 512, (2, 2, 2))  # defaults are Table 4 / Table 8
        bottom = torch.zeros((2, 8, 64, 64), dtype=torch.long)
        top = torch.zeros((2, 4, 32, 32), dtype=torch.long)
        logits = prior(bottom, top, torch.tensor([2, 7]))
    assert logits.shape == (2, 512, 64, 64)
    assert len(prior.pixelcnn.layers) == 20 and len(prior.pixelcnn.attention_blocks) == 4
    # filter 5 over one slice: rows i-2..i, columns j-2..j+2 of the present slice, no past slice
    assert prior.pixelcnn.layers[0].vertical_conv.kernel_size == (1, 5, 5)


def test_paper_config_builds_on_meta_with_paper_shapes():
    spec = experiment_code_spec("kinetics600_256")
    assert (spec.top_shape, spec.bottom_shape, spec.given_bottom_shape) == ((4, 32, 32), (8, 64, 64), (2, 64, 64))
    with torch.device("meta"):
        module = BottomPriorModule(prior=yaml_prior_config("kinetics600_256", "bottom_prior"), code_spec=spec)
        logits = module.core(*module.example_inputs(batch_size=2))
    assert logits.shape == (2, 512, 64, 64)
    pixelcnn = module.prior.pixelcnn
    assert len(pixelcnn.layers) == 20 and len(pixelcnn.attention_blocks) == 4  # Table 4
    assert pixelcnn.layers[0].vertical_conv.kernel_size == (1, 5, 5)  # Table 4: filter 5
    assert pixelcnn.layers[0].vertical_conv.out_channels == 2 * 1024  # Table 4 residual units
    info = module.describe_info()
    assert info["bottom_shape"] == [8, 64, 64] and info["attention_after_layers"] == [5, 10, 15, 20]


def test_paper_config_with_the_extra_paths_builds_on_meta_at_paper_shapes():
    spec = experiment_code_spec("kinetics600_256")
    config = replace(yaml_prior_config("kinetics600_256", "bottom_prior"), cond_top_direct=True, cond_logits=True)
    with torch.device("meta"):
        module = BottomPriorModule(prior=config, code_spec=spec)
        bottom_codes, top_codes, slice_index = module.example_inputs(batch_size=2)
        parent = module.prior.conditioning.parent(top_codes, slice_index)
        logits = module.core(bottom_codes, top_codes, slice_index)
    assert parent.shape == (2, config.cond_channels, 64, 64) and logits.shape == (2, 512, 64, 64)
    assert module.prior.cond_head.out_channels == 512  # the codebook, from the cache's code spec


def test_bad_window_and_kernel_are_rejected_with_a_reason():
    with pytest.raises(ValueError, match="power of two"):
        tiny_prior(window=3)
    with pytest.raises(ValueError, match="odd"):
        tiny_prior(kernel_size=4)


def test_copy_path_adds_the_bonus_to_the_previous_slices_code_in_training_and_sampling():
    plain = tiny_prior(num_layers=2)
    copying = BottomPrior(replace(plain.config, copy_previous_slice=True), NUM_TOP_CODES, NUM_CODES,
                          top_to_bottom_stride=(2, 2, 2)).double()
    copying.load_state_dict(plain.state_dict(), strict=False)  # same network; only copy_gain is new
    bottom, top = random_codes(2, (4, 4, 4), (2, 2, 2))
    index = torch.tensor([1, 3])
    bonus = copying(bottom, top, index) - plain(bottom, top, index)  # (B, K, Hb, Wb)
    previous = bottom[torch.arange(2), index - 1]
    expected = F.one_hot(previous, NUM_CODES).movedim(-1, 1) * torch.log(torch.tensor(float(NUM_CODES)))
    assert torch.allclose(bonus, expected.double())
    with torch.no_grad():
        copying.copy_gain.fill_(1e3)  # copying dominates every logit: sampling must repeat the last given slice
    for name in ("naive", "cached"):
        sampled = get_sampler(name).sample_bottom(copying.eval(), top, bottom[:, :2], 2, SamplingOptions(),
                                                  torch.Generator().manual_seed(0))
        assert torch.equal(sampled[:, 2:], bottom[:, 1:2].expand(-1, 2, -1, -1))


def test_parent_code_path_reads_each_cells_own_parent_and_its_place():
    conditioning = tiny_prior(cond_top_direct=True).conditioning
    _, top = random_codes(1, (8, 6, 6), (4, 3, 3))
    for n in range(8):
        base = conditioning.parent(top, torch.tensor([n]))  # (1, C, 6, 6)
        changed = top.clone()
        changed[0, 1, 2, 0] = (changed[0, 1, 2, 0] + 1) % NUM_TOP_CODES
        moved = (conditioning.parent(changed, torch.tensor([n])) - base).abs().sum(1)[0]  # (6, 6)
        children = torch.zeros(6, 6, dtype=torch.bool)
        if n // 2 == 1:
            children[4:6, 0:2] = True
        assert (moved[children] > 0).all() and (moved[~children] == 0).all(), f"slice {n}"
    places = conditioning.parent(torch.zeros_like(top), torch.tensor([2]))[0]  # one code everywhere: 4 places
    assert not torch.allclose(places[:, 0, 0], places[:, 0, 1]) and torch.equal(places[:, 0, 0], places[:, 2, 2])


def test_cond_logits_add_a_head_of_the_conditioning_in_training_and_sampling():
    plain = tiny_prior(num_layers=2)
    headed = tiny_prior(num_layers=2, cond_logits=True)
    headed.load_state_dict(plain.state_dict(), strict=False)  # same network; only cond_head is new
    bottom, top = random_codes(2, (4, 4, 4), (2, 2, 2))
    index = torch.tensor([2, 3])
    expected = headed.cond_head(headed.condition(top, bottom, index))
    torch.testing.assert_close(headed(bottom, top, index) - plain(bottom, top, index), expected)
    with torch.no_grad():
        headed.cond_head.weight.zero_()
        headed.cond_head.bias.fill_(-1e3)
        headed.cond_head.bias[4] = 0.0  # the head rules out every code but 4: sampling must give 4 everywhere
    for name in ("naive", "cached"):
        sampled = get_sampler(name).sample_bottom(headed.eval(), top, bottom[:, :2], 2, SamplingOptions(),
                                                  torch.Generator().manual_seed(0))
        assert (sampled[:, 2:] == 4).all(), name
