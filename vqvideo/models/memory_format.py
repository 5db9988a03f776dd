"""Whether a model's 3D convolutions compute in channels-last what they compute in the default layout.

Channels-last (B, T, H, W, C) is a layout only, and a faster one for the CPU's bf16 convolutions, but torch 2.13's
CPU bf16 conv3d weight gradient in that layout is wrong for some shapes: for inputs of depth 2 under a depth-3
kernel it came out as garbage or NaN (not on every call) at batch sizes 2 to 16 and widths 4 to 64, while depth 4
and more agreed with the default layout to bf16 rounding. A layout is not worth a wrong gradient, so each convolution is
checked at its own input shape, under the autocast that training uses, and the model is converted only if all agree:
one channels-last input or weight is enough for torch to pick the channels-last kernel, so a convolution cannot be
kept out of it while its neighbours are in it.
"""

from __future__ import annotations

import contextlib
import copy
import math
from typing import Callable, ContextManager

import torch
from torch import Tensor, nn

CONVS_3D = (nn.Conv3d, nn.ConvTranspose3d)
TOLERANCE = 0.05  # of the largest value: bf16 rounding differs by ~0.3%, the broken kernels by 10% to inf
# A broken kernel's garbage is now and then right (a depth-2, width-16 conv3d failed only 5 of 20 checks in one run),
# so each convolution gets several checks: more for small inputs, which are both cheap and where the bug lives.
MIN_TRIALS, MAX_TRIALS, TRIAL_ELEMENTS = 2, 16, 2**21


def conv_input_shapes(model: nn.Module, example: Tensor) -> dict[str, torch.Size]:
    """The input shape of each 3D (transposed) convolution of `model` when it runs on `example` (whatever `model`
    takes, e.g. (B, 3, T, H, W) float video): one forward in eval mode, without gradients, in the order they run."""
    shapes: dict[str, torch.Size] = {}

    def record(name: str):
        def hook(module, inputs, output) -> None:
            shapes.setdefault(name, inputs[0].shape)
        return hook

    handles = [module.register_forward_hook(record(name)) for name, module in model.named_modules()
               if isinstance(module, CONVS_3D)]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(example)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return shapes


def _outputs_and_gradients(conv: nn.Module, inputs: Tensor, output_grad: Tensor, channels_last: bool,
                           context: Callable[[], ContextManager]) -> list[Tensor]:
    conv = copy.deepcopy(conv).requires_grad_(True)
    if channels_last:
        conv = conv.to(memory_format=torch.channels_last_3d)
        inputs = inputs.contiguous(memory_format=torch.channels_last_3d)
    inputs = inputs.clone().requires_grad_(True)
    with context():
        output = conv(inputs)
    output.backward(output_grad.to(output.dtype))
    results = [output.detach(), inputs.grad, conv.weight.grad]
    return [tensor.float() for tensor in results + ([conv.bias.grad] if conv.bias is not None else [])]


def agrees_in_channels_last(conv: nn.Module, input_shape: tuple[int, ...],
                            context: Callable[[], ContextManager] = contextlib.nullcontext, trials: int = 2) -> bool:
    """Whether `conv` (a Conv3d or ConvTranspose3d) gives, in channels-last, finite output, input gradient and
    parameter gradients within TOLERANCE of the default layout's, on `trials` random float32 inputs of
    `input_shape` (B, C, T, H, W) run under `context()` (e.g. bf16 autocast). The global RNG is left untouched."""
    device = conv.weight.device
    generator = torch.Generator(device=device).manual_seed(0)
    for _ in range(trials):
        inputs = torch.randn(input_shape, generator=generator, device=device)
        with torch.no_grad():
            output_shape = conv(inputs).shape
        output_grad = torch.randn(output_shape, generator=generator, device=device)
        expected = _outputs_and_gradients(conv, inputs, output_grad, False, context)
        got = _outputs_and_gradients(conv, inputs, output_grad, True, context)
        for value, reference in zip(got, expected):
            scale = reference.abs().max().clamp_min(torch.finfo(torch.float32).tiny)
            if not torch.isfinite(value).all() or (value - reference).abs().max() > TOLERANCE * scale:
                return False
    return True


def channels_last_verdicts(model: nn.Module, example: Tensor,
                           context: Callable[[], ContextManager] = contextlib.nullcontext) -> dict[str, bool]:
    """{name: agrees_in_channels_last} for every 3D convolution `model` runs on `example`, at its input shape, with
    `trials_for` its input's size."""
    return {name: agrees_in_channels_last(model.get_submodule(name), tuple(shape), context, trials_for(shape))
            for name, shape in conv_input_shapes(model, example).items()}


def trials_for(input_shape: tuple[int, ...]) -> int:
    """MIN_TRIALS for an input of TRIAL_ELEMENTS elements or more, up to MAX_TRIALS for small ones."""
    return max(MIN_TRIALS, min(MAX_TRIALS, TRIAL_ELEMENTS // math.prod(input_shape)))
