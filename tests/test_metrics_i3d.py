"""The I3D of FVD: TensorFlow "same" padding, the published key layout, TorchScript files, clear load errors."""

from __future__ import annotations


import pytest
import torch
import torch.nn.functional as F

from vqvideo.metrics.i3d import (I3DWeightsError, InceptionI3d, MaxPool3dSame, TorchScriptI3D, Unit3D,
                                 check_i3d_input, load_i3d, random_i3d, same_padding)

PUBLISHED_KEYS = {  # names and shapes as VideoGPT/TATS's i3d_pretrained_400.pt stores them
    "Conv3d_1a_7x7.conv3d.weight": (64, 3, 7, 7, 7),
    "Conv3d_1a_7x7.bn.running_var": (64,),
    "Conv3d_2c_3x3.conv3d.weight": (192, 64, 3, 3, 3),
    "Mixed_3b.b1b.conv3d.weight": (128, 96, 3, 3, 3),
    "Mixed_5c.b3b.bn.bias": (128,),
    "logits.conv3d.weight": (400, 1024, 1, 1, 1),
    "logits.conv3d.bias": (400,),
}


def tf_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's definition, by search: the least total padding giving ceil(size / stride) outputs, the
    smaller half before."""
    wanted = -(-size // stride)
    total = next(pad for pad in range(kernel + stride) if (size + pad - kernel) // stride + 1 >= wanted)
    return total // 2, total - total // 2


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    return torch.rand(1, 3, 9, 224, 224, generator=torch.Generator().manual_seed(0)) * 2 - 1


def random_published_state(seed: int = 1) -> dict[str, torch.Tensor]:
    """A state dict in the published layout with random values (as a file without num_batches_tracked)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, value in InceptionI3d().state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue
        noise = torch.randn(value.shape, generator=generator)
        state[name] = noise.abs() + 0.5 if name.endswith("running_var") else noise * 0.1
    return state


def test_same_padding_is_tensorflow_same():
    for size in range(1, 40):
        for kernel in range(1, 8):
            for stride in (1, 2, 3):
                expected = tf_same_padding(size, kernel, stride)
                assert same_padding(size, kernel, stride) == expected, (size, kernel, stride)
    assert same_padding(10, 7, 2) == (2, 3)  # odd total: the extra pixel goes after


def test_unit_and_pool_pad_asymmetrically_on_odd_sizes():
    torch.manual_seed(0)
    unit = Unit3D(3, 4, (3, 7, 7), (2, 2, 2)).eval()
    unit.bn.running_mean.uniform_(-1, 1)
    unit.bn.running_var.uniform_(0.5, 2)
    x = torch.randn(1, 3, 5, 9, 11)
    pads = [tf_same_padding(size, kernel, 2) for size, kernel in zip((5, 9, 11), (3, 7, 7))]
    flat = (*pads[2], *pads[1], *pads[0])  # F.pad order: W, H, T
    expected = F.relu(F.batch_norm(F.conv3d(F.pad(x, flat), unit.conv3d.weight, stride=2), unit.bn.running_mean,
                                   unit.bn.running_var, unit.bn.weight, unit.bn.bias, eps=1e-5))
    with torch.no_grad():
        out = unit(x)
    assert out.shape == (1, 4, 3, 5, 6)  # ceil(size / 2)
    assert torch.allclose(out, expected, atol=1e-6)
    assert unit.bn.eps == 1e-5 and unit.conv3d.bias is None
    pool = MaxPool3dSame((3, 3, 3), (2, 2, 2))
    features = torch.rand(1, 2, 5, 7, 9)
    pool_pads = [tf_same_padding(size, 3, 2) for size in (5, 7, 9)]
    expected = F.max_pool3d(F.pad(features, (*pool_pads[2], *pool_pads[1], *pool_pads[0])), 3, 2)
    assert torch.equal(pool(features), expected)


def test_output_is_time_averaged_400_logits(clip):
    model = random_i3d()
    with torch.no_grad():
        logits = model(clip.expand(2, -1, -1, -1, -1))
    assert logits.shape == (2, 400) and torch.isfinite(logits).all()
    assert torch.allclose(logits[0], logits[1], atol=1e-5)
    assert 0.1 < logits.std() < 100  # He init keeps a usable scale through the network
    for bad in ((1, 3, 8, 224, 224), (1, 3, 16, 256, 256), (1, 3, 16, 160, 224), (1, 1, 16, 224, 224)):
        with pytest.raises(ValueError, match="224"):
            check_i3d_input(torch.zeros(bad))


def test_state_dict_in_published_layout_loads_exactly(tmp_path, clip):
    state = random_published_state()
    for name, shape in PUBLISHED_KEYS.items():
        assert tuple(state[name].shape) == shape, name
    path = tmp_path / "i3d_pretrained_400.pt"
    torch.save(state, path)
    loaded = load_i3d(path)
    reference = InceptionI3d()
    reference.load_state_dict(state, strict=False)
    reference.eval()
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    for name, value in state.items():
        assert torch.equal(loaded.state_dict()[name], value), name
    with torch.no_grad():
        assert torch.equal(loaded(clip), reference(clip))


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_torchscript_file_loads(tmp_path, clip):
    model = random_i3d(seed=3)
    path = tmp_path / "i3d_traced.pt"
    with torch.no_grad():
        expected = model(clip)
        torch.jit.trace(model, clip, check_trace=False).save(str(path))
    loaded = load_i3d(path)
    assert isinstance(loaded, TorchScriptI3D) and loaded.flags == {}
    with torch.no_grad():
        assert torch.allclose(loaded(clip), expected, atol=1e-5)


class StyleGANVLike(torch.nn.Module):
    """The call signature of StyleGAN-V's i3d_torchscript.pt; the output encodes the flags it was given."""

    def forward(self, x: torch.Tensor, rescale: bool = True, resize: bool = True,
                return_features: bool = False) -> torch.Tensor:
        flags = 100.0 * float(rescale) + 10.0 * float(resize) + float(not return_features)
        return x.mean(dim=(1, 2, 3, 4)).unsqueeze(1).expand(-1, 400) + flags


def test_stylegan_v_torchscript_gets_its_flags(tmp_path):
    path = tmp_path / "i3d_torchscript.pt"
    torch.jit.script(StyleGANVLike()).save(str(path))
    loaded = load_i3d(path)
    assert loaded.flags == {"rescale": False, "resize": False, "return_features": True}
    assert torch.equal(loaded(torch.zeros(2, 3, 16, 224, 224)), torch.zeros(2, 400))


def test_bad_files_give_one_clear_error(tmp_path):
    good = random_published_state()
    missing = dict(good)
    del missing["Mixed_3b.b1b.conv3d.weight"], missing["logits.conv3d.bias"]
    extra = {**good, "module.fc.weight": torch.zeros(1)}
    misshapen = {**good, "Conv3d_1a_7x7.conv3d.weight": torch.zeros(64, 3, 3, 7, 7)}
    cases = {
        "missing.pt": (missing, ["missing keys", "Mixed_3b.b1b.conv3d.weight", "logits.conv3d.bias"]),
        "extra.pt": (extra, ["unexpected keys", "module.fc.weight"]),
        "misshapen.pt": (misshapen, ["wrong shapes", "Conv3d_1a_7x7.conv3d.weight", "(64, 3, 3, 7, 7)"]),
        "numbers.pt": ({"epoch": 3}, ["not a state dict of tensors"]),
    }
    for name, (payload, words) in cases.items():
        torch.save(payload, tmp_path / name)
        with pytest.raises(I3DWeightsError) as error:
            load_i3d(tmp_path / name)
        for word in [str(tmp_path / name), "i3d_pretrained_400.pt", *words]:
            assert word in str(error.value), (name, word, str(error.value))
    (tmp_path / "notes.pt").write_text("not weights")
    torch.save(torch.nn.Linear(2, 2), tmp_path / "pickled_module.pt")
    for name in ("notes.pt", "pickled_module.pt", "absent.pt"):
        with pytest.raises(I3DWeightsError, match="i3d_pretrained_400.pt") as error:
            load_i3d(tmp_path / name)
        assert str(tmp_path / name) in str(error.value)


def test_truncated_key_list_says_how_many_more(tmp_path):
    state = {name: value for name, value in random_published_state().items() if not name.startswith("Mixed_4")}
    torch.save(state, tmp_path / "partial.pt")
    with pytest.raises(I3DWeightsError, match=r"\(\+\d+ more\)") as error:
        load_i3d(tmp_path / "partial.pt")
    assert len(str(error.value)) < 2000  # the first keys only, not hundreds
