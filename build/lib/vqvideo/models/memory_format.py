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
# A broken kernel's garbage is now and then right (a depth-2, width-16 conv3d passed 15 of 20 checks that reused one
# input), so each convolution gets several checks: more for small inputs, which are both cheap and where the bug is.
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


QUANTITIES = ("output", "input_grad", "weight_grad", "bias_grad")


def _outputs_and_gradients(conv: nn.Module, inputs: Tensor, output_grad: Tensor, channels_last: bool,
                           context: Callable[[], ContextManager]) -> dict[str, Tensor]:
    conv = copy.deepcopy(conv).requires_grad_(True)
    if channels_last:
        conv = conv.to(memory_format=torch.channels_last_3d)
        inputs = inputs.contiguous(memory_format=torch.channels_last_3d)
    inputs = inputs.clone().requires_grad_(True)
    with context():
        output = conv(inputs)
    output.backward(output_grad.to(output.dtype))
    bias_grad = [conv.bias.grad] if conv.bias is not None else []
    return {name: tensor.float() for name, tensor in zip(QUANTITIES, [output.detach(), inputs.grad,
                                                                      conv.weight.grad, *bias_grad])}


def channels_last_mismatches(conv: nn.Module, input_shape: tuple[int, ...],
                             context: Callable[[], ContextManager] = contextlib.nullcontext,
                             generator: torch.Generator | None = None) -> list[str]:
    """One check of `conv` (a Conv3d or ConvTranspose3d) on a random float32 input of `input_shape` (B, C, T, H, W)
    drawn from `generator`, run under `context()` (e.g. bf16 autocast): the QUANTITIES that, in channels-last, are
    not finite or differ from the default layout's by more than TOLERANCE of its largest value ([] = agrees)."""
    device = conv.weight.device
    generator = generator if generator is not None else torch.Generator(device=device).manual_seed(0)
    inputs = torch.randn(input_shape, generator=generator, device=device)
    with torch.no_grad():
        output_shape = conv(inputs).shape
    output_grad = torch.randn(output_shape, generator=generator, device=device)
    expected = _outputs_and_gradients(conv, inputs, output_grad, False, context)
    got = _outputs_and_gradients(conv, inputs, output_grad, True, context)
    mismatches = []
    for name, reference in expected.items():
        scale = reference.abs().max().clamp_min(torch.finfo(torch.float32).tiny)
        if not torch.isfinite(got[name]).all() or (got[name] - reference).abs().max() > TOLERANCE * scale:
            mismatches.append(name)
    return mismatches


def agrees_in_channels_last(conv: nn.Module, input_shape: tuple[int, ...],
                            context: Callable[[], ContextManager] = contextlib.nullcontext, trials: int = 2) -> bool:
    """Whether `conv` passes `trials` checks (`channels_last_mismatches`, each on a new random input of
    `input_shape`), stopping at the first failure. The global RNG is left untouched."""
    generator = torch.Generator(device=conv.weight.device).manual_seed(0)
    return not any(channels_last_mismatches(conv, input_shape, context, generator) for _ in range(trials))


def channels_last_verdicts(model: nn.Module, example: Tensor,
                           context: Callable[[], ContextManager] = contextlib.nullcontext) -> dict[str, bool]:
    """{name: agrees_in_channels_last} for every 3D convolution `model` runs on `example`, at its input shape, with
    `trials_for` its input's size."""
    return {name: agrees_in_channels_last(model.get_submodule(name), tuple(shape), context, trials_for(shape))
            for name, shape in conv_input_shapes(model, example).items()}


def trials_for(input_shape: tuple[int, ...]) -> int:
    """MIN_TRIALS for an input of TRIAL_ELEMENTS elements or more, up to MAX_TRIALS for small ones."""
    return max(MIN_TRIALS, min(MAX_TRIALS, TRIAL_ELEMENTS // math.prod(input_shape)))
