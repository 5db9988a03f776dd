"""Building blocks shared by the VQ-VAE and both priors: the gated activation and the residual block.

The residual block is the one of VQ-VAE (van den Oord et al. 2017) and VQ-VAE-2 (Razavi et al. 2019):
x + conv1x1(relu(conv3x3(relu(x)))), in 2D (the bottom prior's conditioning stack, one slice) or 3D (the
VQ-VAE's encoder/decoder stacks and the top prior's conditioning stack, a volume).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CONVS = {2: nn.Conv2d, 3: nn.Conv3d}


TIME_PADDINGS = ("zeros", "replicate")


class TimeCausalConv3d(nn.Conv3d):
    """A Conv3d whose time axis is padded on the left only: output slice t sees input slices up to the end of its
    own window, never later ones (the causal video tokenizers' choice: MAGVIT-v2, CogVideoX, Cosmos). `padding`
    is the symmetric (t, h, w) padding it replaces; the time padding 2·p_t all goes before the first slice, so the
    output has the same length as the symmetric conv's. Parameter names are Conv3d's (checkpoints interchange).

    time_padding "zeros" pads with zeros; "replicate" repeats the first slice (as MAGVIT-v2 and CogVideoX do), so a
    still scene looks still from its first slice on and encodes to the same codes in every time slice."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 time_padding: str = "zeros") -> None:
        if time_padding not in TIME_PADDINGS:
            raise ValueError(f"time_padding must be one of {TIME_PADDINGS}, got {time_padding!r}")
        triple = lambda value: tuple(value) if isinstance(value, (tuple, list)) else (value,) * 3  # noqa: E731
        time_pad, height_pad, width_pad = triple(padding)
        super().__init__(in_channels, out_channels, kernel_size, stride, (0, height_pad, width_pad))
        self.left_time_pad, self.time_padding = 2 * time_pad, time_padding

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features (B, C, T, H, W) → (B, C', T', H', W'), T' as with symmetric padding."""
        if self.time_padding == "replicate":
            first = features[:, :, :1].expand(-1, -1, self.left_time_pad, -1, -1)
            return super().forward(torch.cat([first, features], dim=2))
        return super().forward(F.pad(features, (0, 0, 0, 0, self.left_time_pad, 0)))


def gate(pre_activation: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Gated activation tanh(a) * sigmoid(b) of the gated PixelCNN: (..., 2C, ...) → (..., C, ...), halves split
    on `dim` (1 for channels-first features, -1 for channels-last rows in the cached sampler)."""
    content, gate_logits = pre_activation.chunk(2, dim=dim)
    return torch.tanh(content) * torch.sigmoid(gate_logits)


class ResidualBlock(nn.Module):
    """features + conv1(relu(conv3(relu(features)))): channels → residual_channels (kernel 3) → channels (kernel 1).

    dims: 2 for (B, C, H, W) features, 3 for (B, C, T, H, W). Output has the input's shape. conv: the kernel-3
    convolution's class (default: the plain conv of `dims`; `TimeCausalConv3d` for a causal-in-time stack)."""

    def __init__(self, channels: int, residual_channels: int, dims: int = 3, conv: type[nn.Module] | None = None
                 ) -> None:
        super().__init__()
        if dims not in CONVS:
            raise ValueError(f"dims must be 2 or 3, got {dims}")
        self.conv = (conv or CONVS[dims])(channels, residual_channels, kernel_size=3, padding=1)
        self.project = CONVS[dims](residual_channels, channels, kernel_size=1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features + self.project(F.relu(self.conv(F.relu(features))))


def residual_stack(channels: int, residual_channels: int, num_blocks: int, dims: int = 3,
                   conv: type[nn.Module] | None = None) -> nn.Sequential:
    """`num_blocks` residual blocks in a row (the stacks of Table 3, Table 5 and Table 8); conv: see ResidualBlock."""
    return nn.Sequential(*[ResidualBlock(channels, residual_channels, dims, conv) for _ in range(num_blocks)])
