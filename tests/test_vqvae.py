"""Video VQ-VAE model: paper-scale shapes on meta, shape errors, encode/decode consistency, bottom masking, frozen
use. (The LightningModule: tests/test_vqvae_module.py.)"""

from __future__ import annotations

import pytest
import torch
from tiny_models import CLIP_SHAPE, TINY_SPEC, tiny_vqvae_config

from vqvideo.cache.manifest import code_spec_of
from vqvideo.models.vqvae import NUM_GIVEN_FRAMES, VQVAE, VQVAEConfig, bottom_keep_mask, encode_given_frames


def test_paper_scale_shapes_on_meta():
    with torch.device("meta"):
        vqvae = VQVAE(VQVAEConfig())  # Table 3 defaults
        video = torch.zeros(2, 3, 16, 256, 256)
        codes = vqvae.encode(video)
        given = encode_given_frames(vqvae, video)  # NUM_GIVEN_FRAMES
        reconstruction = vqvae.eval()(video).reconstruction
    assert NUM_GIVEN_FRAMES == 4  # §3.2: 4 given frames, 12 predicted
    assert vqvae.latent_shapes(16, 256, 256) == ((4, 32, 32), (8, 64, 64))
    assert codes.top.shape == (2, 4, 32, 32) and codes.bottom.shape == (2, 8, 64, 64)
    assert codes.top.dtype == torch.int64 and codes.bottom.dtype == torch.int64
    assert given.top.shape == (2, 1, 32, 32) and given.bottom.shape == (2, 2, 64, 64)
    assert reconstruction.shape == video.shape


def test_other_strides_and_clear_shape_errors():
    vqvae = VQVAE(tiny_vqvae_config(bottom_kernel=(4, 4, 4), bottom_stride=(2, 2, 2)))
    assert vqvae.latent_shapes(16, 64, 64) == ((4, 16, 16), (8, 32, 32))
    with pytest.raises(ValueError, match=r"not divisible by the total stride \(4, 4, 4\)"):
        vqvae.encode(torch.zeros(1, 3, 16, 62, 64))
    with pytest.raises(ValueError, match="differ from it by an even number"):
        VQVAE(tiny_vqvae_config(bottom_kernel=(3, 8, 8)))


def test_eval_forward_equals_decode_of_encode():
    torch.manual_seed(0)
    vqvae = VQVAE(tiny_vqvae_config()).train()
    video = torch.rand(2, 3, 8, 32, 32) * 2 - 1
    vqvae(video)  # data-initialise the codebooks
    vqvae.eval()
    with torch.no_grad():
        forward_reconstruction = vqvae(video).reconstruction
        codes = vqvae.encode(video)
        assert torch.allclose(vqvae.decode_codes(*codes), forward_reconstruction, atol=1e-6)
        assert torch.allclose(vqvae.reconstruct(video), forward_reconstruction, atol=1e-6)


def test_bottom_masking_only_in_training():
    torch.manual_seed(0)
    vqvae = VQVAE(tiny_vqvae_config(bottom_mask_prob=1.0)).train()
    video = torch.rand(1, 3, 8, 32, 32) * 2 - 1
    masked = vqvae(video).reconstruction
    codes = vqvae.eval().encode(video)
    top_only = vqvae.decode_top_only(codes.top)
    assert torch.allclose(masked, top_only, atol=1e-5)  # training with p=1 decodes the top alone
    assert not torch.allclose(vqvae.reconstruct(video), top_only, atol=1e-5)


@pytest.mark.parametrize("prob", [0.0, 0.2, 0.5, 1.0])
def test_masking_rate_is_the_configured_probability(prob):
    torch.manual_seed(0)
    masked = (~bottom_keep_mask(20_000, prob, "cpu")).float().mean().item()
    assert abs(masked - prob) < 0.015  # 20 000 draws: about 5 standard deviations at p = 0.5


def test_forward_masks_with_the_probability_it_is_given():
    """A per-call probability (the training schedule's) overrides the config's; evaluation never masks."""
    torch.manual_seed(0)
    vqvae = VQVAE(tiny_vqvae_config(bottom_mask_prob=0.0))
    decoded_bottoms, decode = [], vqvae._decode
    vqvae._decode = lambda top, bottom: decoded_bottoms.append(bottom) or decode(top, bottom)
    video = torch.rand(2, 3, 8, 32, 32) * 2 - 1
    vqvae.train()(video, bottom_mask_prob=1.0)
    vqvae(video)  # the config's 0.0
    vqvae.eval()(video, bottom_mask_prob=1.0)
    masked, config, evaluation = ((bottom.flatten(1) != 0).any(dim=1).tolist() for bottom in decoded_bottoms)
    assert (masked, config, evaluation) == ([False, False], [True, True], [True, True])


def test_frozen_vqvae_stays_in_eval_and_never_updates():
    parent = torch.nn.ModuleDict({"vqvae": VQVAE(tiny_vqvae_config(data_init=False)).freeze()})
    parent.train()
    assert not parent["vqvae"].training and not parent["vqvae"].top_quantizer.training
    before = parent["vqvae"].bottom_quantizer.codebook.clone()
    parent["vqvae"](torch.rand(1, 3, 8, 32, 32))
    assert torch.equal(parent["vqvae"].bottom_quantizer.codebook, before)
    assert not any(p.requires_grad for p in parent.parameters())


def test_the_tests_tiny_latent_facts_are_the_tiny_vqvaes():
    """tests/tiny_models.py's TINY_SPEC is what the tiny VQ-VAE gives for its clips (the priors' tests rely on it)."""
    with torch.device("meta"):
        assert code_spec_of(VQVAE(tiny_vqvae_config()), CLIP_SHAPE, NUM_GIVEN_FRAMES) == TINY_SPEC


def _initialised(config: VQVAEConfig, video: torch.Tensor) -> VQVAE:
    vqvae = VQVAE(config).train()
    vqvae(video)  # data-initialise the codebooks on this clip
    return vqvae.eval()


@pytest.mark.parametrize("causal_time,padding", [(True, "zeros"), (True, "replicate"), (False, "zeros")])
def test_given_frames_alone_encode_to_their_in_clip_codes_only_when_causal(causal_time, padding):
    torch.manual_seed(0)
    video = torch.rand(2, 3, 16, 32, 32) * 2 - 1
    vqvae = _initialised(tiny_vqvae_config(causal_time=causal_time, causal_time_padding=padding), video)
    with torch.no_grad():
        full, given = vqvae.encode(video), encode_given_frames(vqvae, video)
        full_latents, given_latents = vqvae._latents(video), vqvae._latents(video[:, :, :NUM_GIVEN_FRAMES])
    num_top, num_bottom = given.top.shape[1], given.bottom.shape[1]
    same_latents = torch.allclose(full_latents[0][:, :, :num_top], given_latents[0], atol=1e-5)
    assert same_latents == causal_time and causal_time == torch.allclose(
        full_latents[1][:, :, :num_bottom], given_latents[1], atol=1e-5)
    if causal_time:  # the paper's symmetric padding lets later frames change the first slices' codes
        assert torch.equal(full.top[:, :num_top], given.top) and torch.equal(full.bottom[:, :num_bottom], given.bottom)


@pytest.mark.parametrize("padding", ["zeros", "replicate"])
def test_causal_time_codes_never_see_later_frames(padding):
    torch.manual_seed(0)
    vqvae = VQVAE(tiny_vqvae_config(causal_time=True, causal_time_padding=padding)).eval()
    video = (torch.rand(1, 3, 16, 32, 32) * 2 - 1).requires_grad_(True)
    top_latents, bottom_latents = vqvae._latents(video)  # top (1, D, 4, ...), bottom (1, D, 8, ...)
    for latents, frames_per_slice in ((top_latents, 4), (bottom_latents, 2)):
        for index in range(latents.shape[2]):
            (grad,) = torch.autograd.grad(latents[:, :, index].sum(), video, retain_graph=True)
            seen = grad.abs().sum(dim=(0, 1, 3, 4)) > 0  # (T,) frames this slice depends on
            last_frame = (index + 1) * frames_per_slice - 1
            assert not seen[last_frame + 1:].any() and seen[last_frame]


def test_causal_time_keeps_parameter_names():
    plain, causal = VQVAE(tiny_vqvae_config()), VQVAE(tiny_vqvae_config(causal_time=True))
    assert plain.state_dict().keys() == causal.state_dict().keys()
    assert VQVAEConfig().causal_time is False  # the paper's design, and what old checkpoints were trained with


@pytest.mark.parametrize("padding,steady", [("replicate", True), ("zeros", False)])
def test_a_still_clip_encodes_to_the_same_codes_in_every_slice_only_with_replicate_padding(padding, steady):
    torch.manual_seed(0)
    frame = torch.rand(2, 3, 1, 32, 32) * 2 - 1
    video = frame.expand(-1, -1, 16, -1, -1).contiguous()
    vqvae = _initialised(tiny_vqvae_config(causal_time=True, causal_time_padding=padding), torch.rand(2, 3, 16, 32, 32))
    with torch.no_grad():
        latents = vqvae._latents(video)  # top (B, D, 4, ...), bottom (B, D, 8, ...)
    for level in latents:
        assert torch.allclose(level, level[:, :, :1].expand_as(level), atol=1e-5) == steady


def test_unknown_causal_time_padding_is_refused():
    with pytest.raises(ValueError, match="time_padding must be one of"):
        VQVAE(tiny_vqvae_config(causal_time=True, causal_time_padding="reflect"))
