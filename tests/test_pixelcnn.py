"""The gated PixelCNN both priors share: masked convolutions causal by gradients, no blind spot within a slice,
clear errors for kernels that cannot be masked."""

import pytest
import torch
from tiny_models import input_reach

from vqvideo.models.pixelcnn import CausalMaskedConv3d, GatedPixelCNN


def tiny_pixelcnn(num_layers=3, num_attention_layers=0, kernel_size=3, time_taps=2) -> GatedPixelCNN:
    torch.manual_seed(0)
    return GatedPixelCNN(num_codes=16, hidden_channels=8, residual_channels=8, cond_channels=8, num_layers=num_layers,
                         num_attention_layers=num_attention_layers, num_heads=2, kernel_size=kernel_size,
                         time_taps=time_taps, dropout=0.0).eval()


def reach_of(pixelcnn: GatedPixelCNN, num_slices: int, height: int, width: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    codes = torch.randint(pixelcnn.num_codes, (1, num_slices, height, width), generator=generator)
    cond = torch.randn(1, 8, num_slices, height, width, generator=generator)
    return input_reach(pixelcnn, codes, cond)


def test_convolutions_alone_are_causal_and_cover_a_slice():
    """Without attention: exact causality over slices, and the (kt, k, k) vertical kernel leaves no blind spot
    within a slice once num_layers + 1 >= width - 1 (a y–t-only vertical kernel would miss the upper right)."""
    reach = reach_of(tiny_pixelcnn(num_layers=3), 2, 5, 5)
    earlier = torch.ones_like(reach).tril(diagonal=-1)
    assert not (reach & ~earlier).any()
    first_slice = slice(0, 25)
    assert (reach | ~earlier)[first_slice, first_slice].all()


def test_one_time_tap_with_attention_is_causal_and_sees_every_earlier_position():
    """The bottom prior's use (time_taps=1, filter 5) over a volume: attention reaches the past slices."""
    reach = reach_of(tiny_pixelcnn(num_layers=2, num_attention_layers=1, kernel_size=5, time_taps=1), 2, 4, 4)
    earlier = torch.ones_like(reach).tril(diagonal=-1)
    assert not (reach & ~earlier).any(), "logits see their own position or the future"
    assert (reach | ~earlier).all(), f"blind spot: {(~reach & earlier).sum()} earlier positions unseen"


def test_codes_and_conditioning_volumes_must_match():
    pixelcnn = tiny_pixelcnn()
    with pytest.raises(ValueError, match="num_slices"):
        pixelcnn.logits(torch.zeros(1, 2, 4, 4, dtype=torch.long), torch.zeros(1, 8, 3, 4, 4))
    with pytest.raises(ValueError, match=r"\(B, T, H, W\)"):
        pixelcnn.embed_codes(torch.zeros(1, 4, 4, dtype=torch.long))


def test_kernels_that_cannot_be_masked_are_refused():
    with pytest.raises(ValueError, match="odd"):
        tiny_pixelcnn(kernel_size=4)
    with pytest.raises(ValueError, match="odd"):
        CausalMaskedConv3d(4, 4, (2, 3, 2), "vertical", include_current=True)
    with pytest.raises(ValueError, match="kernel height must be 1"):
        CausalMaskedConv3d(4, 4, (2, 3, 3), "horizontal", include_current=True)
    with pytest.raises(ValueError, match="stack must be one of"):
        CausalMaskedConv3d(4, 4, (2, 3, 3), "diagonal", include_current=True)
