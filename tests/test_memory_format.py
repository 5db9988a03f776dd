"""The channels-last check: a convolution whose output or gradients differ in channels-last (wrong values or NaN) is
refused, a correct one agrees in float32 and bf16 autocast, and looking at a model changes nothing in it."""

from __future__ import annotations

import pytest
import torch
from tiny_models import tiny_vqvae_config
from torch import nn

from vqvideo.models.memory_format import (CONVS_3D, agrees_in_channels_last, channels_last_mismatches,
                                         channels_last_verdicts, conv_input_shapes, trials_for)
from vqvideo.models.vqvae import VQVAE


def bf16_autocast():
    return torch.autocast("cpu", dtype=torch.bfloat16)


def is_channels_last(tensor: torch.Tensor) -> bool:
    return tensor.is_contiguous(memory_format=torch.channels_last_3d) and not tensor.is_contiguous()


class NaNGradient(torch.autograd.Function):
    """Identity forward; the gradient comes back as NaN (a broken weight-gradient kernel)."""

    @staticmethod
    def forward(ctx, tensor):
        return tensor.clone()

    @staticmethod
    def backward(ctx, grad):
        return torch.full_like(grad, float("nan"))


class WrongOutputInChannelsLast(nn.Conv3d):
    def forward(self, inputs):
        return super().forward(inputs) * (1.5 if is_channels_last(inputs) else 1.0)


class NaNWeightGradientInChannelsLast(nn.Conv3d):
    def forward(self, inputs):
        weight = NaNGradient.apply(self.weight) if is_channels_last(inputs) else self.weight
        return self._conv_forward(inputs, weight, self.bias)


class WrongInputGradientInChannelsLast(nn.Conv3d):
    def forward(self, inputs):
        output = super().forward(inputs)
        return output + 2 * (output - output.detach()) if is_channels_last(inputs) else output


@pytest.mark.parametrize("broken, differs", [(WrongOutputInChannelsLast, "output"),
                                             (NaNWeightGradientInChannelsLast, "weight_grad"),
                                             (WrongInputGradientInChannelsLast, "input_grad")])
def test_a_convolution_that_computes_otherwise_in_channels_last_is_refused(broken, differs):
    torch.manual_seed(0)
    conv = broken(4, 4, 3, padding=1)
    assert not agrees_in_channels_last(conv, (2, 4, 4, 8, 8))
    assert not agrees_in_channels_last(conv, (2, 4, 4, 8, 8), bf16_autocast)
    assert differs in channels_last_mismatches(conv, (2, 4, 4, 8, 8))
    if broken is NaNWeightGradientInChannelsLast:
        assert channels_last_mismatches(conv, (2, 4, 4, 8, 8)) == ["weight_grad"]


@pytest.mark.parametrize("conv", [nn.Conv3d(8, 16, 3, padding=1), nn.Conv3d(3, 8, (4, 8, 8), (2, 4, 4), (1, 2, 2)),
                                  nn.ConvTranspose3d(16, 8, 4, 2, 1), nn.Conv3d(8, 8, 1, bias=False)])
def test_a_correct_convolution_agrees_in_float32_and_bf16(conv):
    in_channels = conv.in_channels
    assert agrees_in_channels_last(conv, (2, in_channels, 8, 16, 16))
    assert agrees_in_channels_last(conv, (2, in_channels, 8, 16, 16), bf16_autocast)
    assert channels_last_mismatches(conv, (2, in_channels, 8, 16, 16), bf16_autocast) == []


def test_verdicts_cover_every_convolution_at_its_shape_and_change_nothing():
    torch.manual_seed(0)
    model = VQVAE(tiny_vqvae_config()).train()
    convs = [name for name, module in model.named_modules() if isinstance(module, CONVS_3D)]
    state = {name: value.clone() for name, value in model.state_dict().items()}
    video = torch.rand(2, 3, 16, 32, 32) * 2 - 1
    shapes = conv_input_shapes(model, video)
    assert sorted(shapes) == sorted(convs)
    assert shapes["bottom_encoder.0"] == video.shape and shapes["top_encoder.2"][2:] == (4, 4, 4)
    rng = torch.get_rng_state()
    verdicts = channels_last_verdicts(model, video, bf16_autocast)
    assert sorted(verdicts) == sorted(convs) and all(isinstance(agrees, bool) for agrees in verdicts.values())
    assert torch.equal(torch.get_rng_state(), rng) and model.training
    assert not model.top_quantizer.initialized  # looked at in eval: no data-init, no EMA step
    for name, value in model.state_dict().items():
        assert torch.equal(value, state[name]) and not is_channels_last(value), name


def test_small_convolutions_get_more_checks():
    """A broken kernel passes some checks by chance; the small inputs where it was seen get the most checks."""
    assert trials_for((8, 64, 8, 16, 16)) == 2 and trials_for((8, 3, 16, 64, 64)) == 2
    assert trials_for((8, 64, 4, 8, 8)) == 16 and trials_for((2, 16, 2, 4, 4)) == 16
    assert 2 < trials_for((8, 32, 8, 16, 16)) < 16
