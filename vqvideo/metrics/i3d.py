"""Inception-v1 I3D (Carreira & Zisserman 2017, Kinetics-400): the video classifier whose logits FVD compares.

Written to match, number for number, the PyTorch port that VideoGPT and TATS load from `i3d_pretrained_400.pt`:
the same module names (so that file's state dict loads as is), TensorFlow-style "same" padding computed from each
input's size (the extra pixel goes after, when the total is odd), BatchNorm eps 1e-5 (momentum 0.001, used only
in training), bias only on the final 1x1x1 `logits` convolution, a (2, 7, 7) valid average pool, then logits
averaged over the remaining time steps. A port that pads symmetrically or uses another eps loads the same
weights without error and gives other numbers.

`load_i3d` also accepts a TorchScript I3D, such as StyleGAN-V's `i3d_torchscript.pt`. Nothing is downloaded.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NUM_CLASSES = 400
INPUT_SIZE = 224
MIN_FRAMES = 9  # time after the three stride-2 stages must still fill the (2, 7, 7) average pool
BN_EPS = 1e-5
BN_MOMENTUM = 0.001

WEIGHTS_HELP = (
    "I3D weights are not bundled or downloaded: get the Kinetics-400 `i3d_pretrained_400.pt` of VideoGPT's and "
    "TATS's FVD code, or StyleGAN-V's TorchScript `i3d_torchscript.pt` (docs/evaluation.md, 'Evaluation metrics', "
    "says where), and pass its path (`--i3d PATH`)."
)

# Inception blocks: name -> (in_channels, out channels of (b0, b1a, b1b, b2a, b2b, b3b)), the published layout.
_BLOCKS = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)),
    "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)),
    "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)),
    "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)),
    "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}


class I3DWeightsError(ValueError):
    """An I3D weights file that is missing, unreadable, or not in the expected layout."""


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding of one dimension: output ceil(size / stride); the odd pixel goes after."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pad_same(x: Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> Tensor:
    (t_before, t_after), (h_before, h_after), (w_before, w_after) = (
        same_padding(size, k, s) for size, k, s in zip(x.shape[2:], kernel, stride))
    return F.pad(x, (w_before, w_after, h_before, h_after, t_before, t_after))


def check_i3d_input(video: Tensor) -> None:
    """Raise a clear ValueError unless video is (B, 3, T >= 9, H, W) with a 1x1 map after the final pool.

    Five stride-2 stages shrink H and W to ceil(size / 32), and the (2, 7, 7) pool must leave 1x1 (the port
    squeezes those dimensions): 193..224 px, 224 in every protocol. Time shrinks to ceil(T / 8), which must fill
    the pool's 2 steps."""
    sizes_ok = all(math.ceil(size / 32) == 7 for size in video.shape[-2:]) if video.dim() == 5 else False
    if not sizes_ok or video.shape[1] != 3 or video.shape[2] < MIN_FRAMES:
        raise ValueError(f"I3D takes (B, 3, T >= {MIN_FRAMES}, {INPUT_SIZE}, {INPUT_SIZE}) video in [-1, 1], got "
                         f"{tuple(video.shape)}; preprocess uint8 frames with vqvideo.metrics.fvd.preprocess_for_i3d")


class Unit3D(nn.Module):
    """Same-padded Conv3d, then BatchNorm and ReLU (the logits unit: bias, no BatchNorm, no ReLU)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, int, int] = (1, 1, 1),
                 stride: tuple[int, int, int] = (1, 1, 1), logits: bool = False) -> None:
        super().__init__()
        self.kernel, self.stride, self.logits = kernel, stride, logits
        self.conv3d = nn.Conv3d(in_channels, out_channels, kernel, stride, padding=0, bias=logits)
        self.bn = nn.Identity() if logits else nn.BatchNorm3d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM)

    def forward(self, x: Tensor) -> Tensor:
        x = self.bn(self.conv3d(_pad_same(x, self.kernel, self.stride)))
        return x if self.logits else F.relu(x)


class MaxPool3dSame(nn.Module):
    """Max pool after same padding with zeros, as the port does: its inputs are ReLU outputs (>= 0), where zero
    padding equals TensorFlow's -inf padding."""

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool3d(_pad_same(x, self.kernel, self.stride), self.kernel, self.stride)


class InceptionBlock(nn.Module):
    """Four branches concatenated on channels: 1x1 | 1x1 -> 3x3x3 | 1x1 -> 3x3x3 | 3x3x3 max pool -> 1x1."""

    def __init__(self, in_channels: int, out_channels: tuple[int, int, int, int, int, int]) -> None:
        super().__init__()
        c0, c1a, c1b, c2a, c2b, c3b = out_channels
        self.b0 = Unit3D(in_channels, c0)
        self.b1a = Unit3D(in_channels, c1a)
        self.b1b = Unit3D(c1a, c1b, (3, 3, 3))
        self.b2a = Unit3D(in_channels, c2a)
        self.b2b = Unit3D(c2a, c2b, (3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, c3b)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)


class InceptionI3d(nn.Module):
    """Inception-v1 I3D up to its time-averaged logits.

    forward(video): (B, 3, T, 224, 224) float in [-1, 1], T >= 9 -> (B, num_classes) logits (before softmax),
    averaged over the time steps left after the (2, 7, 7) average pool (one step for T = 10..16).
    Module names are those of `i3d_pretrained_400.pt` (e.g. `Conv3d_1a_7x7.conv3d.weight`, `Mixed_3b.b1b.bn.
    running_var`, `logits.conv3d.bias`).
    """

    STAGES = ("Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Conv3d_2b_1x1", "Conv3d_2c_3x3", "MaxPool3d_3a_3x3", "Mixed_3b",
              "Mixed_3c", "MaxPool3d_4a_3x3", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f",
              "MaxPool3d_5a_2x2", "Mixed_5b", "Mixed_5c")

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Mixed_3b = InceptionBlock(*_BLOCKS["Mixed_3b"])
        self.Mixed_3c = InceptionBlock(*_BLOCKS["Mixed_3c"])
        self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
        for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
            self.add_module(name, InceptionBlock(*_BLOCKS[name]))
        self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
        self.Mixed_5b = InceptionBlock(*_BLOCKS["Mixed_5b"])
        self.Mixed_5c = InceptionBlock(*_BLOCKS["Mixed_5c"])
        self.avg_pool = nn.AvgPool3d((2, 7, 7), stride=1)
        self.logits = Unit3D(1024, num_classes, logits=True)

    def forward(self, video: Tensor) -> Tensor:
        check_i3d_input(video)
        x = video
        for name in self.STAGES:
            x = getattr(self, name)(x)
        x = self.logits(self.avg_pool(x))  # (B, classes, T', 1, 1)
        return x.flatten(2).mean(dim=2)  # (B, classes): time average of the logits


class TorchScriptI3D(nn.Module):
    """A TorchScript I3D behind the same call as `InceptionI3d`: (B, 3, T, 224, 224) in [-1, 1] -> (B, 400).

    StyleGAN-V's `i3d_torchscript.pt` takes flags. StyleGAN-V's own FVD passes rescale=True, resize=True (uint8
    range in, the file's own x / 255 * 2 - 1 and resize to 224). Here the input is already preprocessed by one of
    our protocols, so it gets rescale=False, resize=False, return_features=True (400 logits before softmax):
    the protocol stays ours and the file is the only difference from the state-dict I3D."""

    def __init__(self, scripted: torch.jit.ScriptModule, path: str) -> None:
        super().__init__()
        self.scripted, self.path = scripted, path
        arguments = {argument.name for argument in scripted.forward.schema.arguments}
        flags = {"rescale": False, "resize": False, "return_features": True}
        self.flags = {name: value for name, value in flags.items() if name in arguments}

    def forward(self, video: Tensor) -> Tensor:
        features = self.scripted(video, **self.flags)
        if features.shape != (video.shape[0], NUM_CLASSES):
            raise I3DWeightsError(f"{self.path}: TorchScript I3D returned shape {tuple(features.shape)} for input "
                                  f"{tuple(video.shape)}, expected ({video.shape[0]}, {NUM_CLASSES}). {WEIGHTS_HELP}")
        return features


def random_i3d(seed: int = 0) -> InceptionI3d:
    """A randomly initialised I3D in eval mode: stand-in weights for tests and plumbing, never for reporting.

    Convolutions get He-normal weights so activations keep their scale through the ~20 layers (PyTorch's default
    init shrinks them ~6x per layer, and every video would map to nearly the same zero feature). FVD from these
    weights is meaningless; reports label it (`fvd_protocol_card(..., i3d_path=None)`)."""
    generator = torch.Generator().manual_seed(seed)
    model = InceptionI3d()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv3d):
                fan_in = module.weight[0].numel()
                module.weight.normal_(0.0, math.sqrt(2.0 / fan_in), generator=generator)
                if module.bias is not None:
                    module.bias.zero_()
    return model.eval().requires_grad_(False)


def load_i3d(path: str | Path) -> nn.Module:
    """The I3D stored at `path`, on CPU, in eval mode, without gradients.

    path: a PyTorch state dict in the key layout of `i3d_pretrained_400.pt` (loaded with weights_only=True;
    `num_batches_tracked` entries may be absent), or a TorchScript file (e.g. StyleGAN-V's `i3d_torchscript.pt`).
    Returns a module mapping (B, 3, T, 224, 224) float in [-1, 1] to (B, 400) time-averaged logits.
    Raises I3DWeightsError naming the file (and the first offending keys) when it is missing, unreadable or in
    another layout."""
    path = Path(path)
    if not path.is_file():
        raise I3DWeightsError(f"I3D weights file not found: {path}. {WEIGHTS_HELP}")
    if is_torchscript_file(path):
        try:
            scripted = torch.jit.load(str(path), map_location="cpu")
        except Exception as error:  # noqa: BLE001 - any failure means the same thing to the user
            raise I3DWeightsError(f"{path}: looks like TorchScript but does not load ({error}). {WEIGHTS_HELP}")
        return TorchScriptI3D(scripted, str(path)).eval().requires_grad_(False)
    state = _read_state_dict(path)
    model = InceptionI3d()
    _check_keys(path, state, model.state_dict())
    model.load_state_dict(state, strict=False)  # strict checking done above, with a clearer message
    return model.eval().requires_grad_(False)


def is_torchscript_file(path: str | Path) -> bool:
    """True for a TorchScript archive (zip with code/ and constants.pkl), False for a torch.save file."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") or "/code/" in name for name in archive.namelist())


def _read_state_dict(path: Path) -> Mapping[str, Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - pickled code, truncated file or not PyTorch at all
        if "Weights only load failed" in str(error):
            reason = "it pickles Python objects, not only tensors (a whole model?): save its state_dict() instead"
        else:
            reason = f"not a PyTorch state dict or TorchScript file ({type(error).__name__})"
        raise I3DWeightsError(f"{path}: {reason}. {WEIGHTS_HELP}") from None
    if not isinstance(state, Mapping) or not all(isinstance(value, Tensor) for value in state.values()):
        raise I3DWeightsError(f"{path}: holds a {type(state).__name__}, not a state dict of tensors. {WEIGHTS_HELP}")
    return state


def _first(names: Iterable[str], limit: int = 5) -> str:
    names = sorted(names)
    more = f" ... (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _check_keys(path: Path, state: Mapping[str, Tensor], expected: Mapping[str, Tensor]) -> None:
    optional = {name for name in expected if name.endswith("num_batches_tracked")}
    missing = set(expected) - set(state) - optional
    unexpected = set(state) - set(expected)
    misshapen = [f"{name} {tuple(state[name].shape)} (expected {tuple(expected[name].shape)})"
                 for name in sorted(set(state) & set(expected)) if state[name].shape != expected[name].shape]
    problems = [f"{label}: {_first(names)}" for label, names in
                (("missing keys", missing), ("unexpected keys", unexpected)) if names]
    if misshapen:
        problems.append(f"wrong shapes: {'; '.join(misshapen[:5])}" + (" ..." if len(misshapen) > 5 else ""))
    if problems:
        raise I3DWeightsError(f"{path}: not an I3D state dict in the i3d_pretrained_400.pt layout "
                              f"({' | '.join(problems)}). {WEIGHTS_HELP}")
