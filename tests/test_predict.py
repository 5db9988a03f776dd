"""`vqvideo predict` end to end on tiny real checkpoints made here: frames, layout, codes, seeds, bad inputs."""

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image
from tiny_models import (CLIP_SHAPE, TINY_SPEC, save_checkpoint, tiny_bottom_module, tiny_code_spec, tiny_top_module,
                         tiny_vqvae_module)

from vqvideo.cli import main as vqvideo_main
from vqvideo.panels import FOOTER_HEIGHT, GAP, HEADER_HEIGHT
from vqvideo.sampling import SamplingOptions, get_sampler
from vqvideo.sampling.pipeline import PredictionModels, predict_video

NUM_FRAMES, RESOLUTION = CLIP_SHAPE[0], CLIP_SHAPE[1]
TOP_SHAPE, BOTTOM_SHAPE = TINY_SPEC.top_shape, TINY_SPEC.bottom_shape  # given: (1, 4, 4), (2, 8, 8)
DISPLAY_SCALE = 128 // RESOLUTION  # predict upscales panels below 128 px


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("checkpoints")
    torch.manual_seed(0)
    data = {"_class_path": "vqvideo.data.datamodule.KineticsDataModule", "num_frames": NUM_FRAMES,
            "resolution": RESOLUTION, "frame_stride": 1, "val_fraction": 0.2}  # as LightningCLI saves it
    return {"vqvae": save_checkpoint(tiny_vqvae_module(), root / "vqvae.ckpt", data),
            "top": save_checkpoint(tiny_top_module(), root / "top_prior.ckpt"),
            "bottom": save_checkpoint(tiny_bottom_module(), root / "bottom_prior.ckpt")}


def write_video(path: Path, num_frames: int, width: int = 48, height: int = 40) -> Path:
    """A moving colour ramp, H.264 (mpeg4 without libx264)."""
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    ys, xs = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(num_frames):
            frame = np.stack([(xs * 5 + index * 9) % 256, (ys * 6) % 256, np.full_like(xs, 128)], -1)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame.astype(np.uint8), format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("videos")
    write_video(folder / "long.mp4", 20)
    write_video(folder / "short.mp4", 8)
    (folder / "broken.mp4").write_bytes(b"this is not a video")
    return folder


def predict(checkpoints, input_path, out, *extra) -> int:
    return vqvideo_main(["predict", f"--vqvae={checkpoints['vqvae']}", f"--top={checkpoints['top']}",
                         f"--bottom={checkpoints['bottom']}", f"--input={input_path}", f"--out={out}", *extra])


def gif_frames(path: Path) -> np.ndarray:
    with Image.open(path) as gif:
        frames = []
        for index in range(gif.n_frames):
            gif.seek(index)
            frames.append(np.asarray(gif.convert("RGB")))
    return np.stack(frames)  # (T, H, W, 3)


def test_folder_with_short_and_unreadable_videos(checkpoints, videos, tmp_path, capsys):
    out = tmp_path / "predictions"
    assert predict(checkpoints, videos, out, "--num_samples=2", "--seed=3") == 0
    assert "broken.mp4" in capsys.readouterr().err  # reported by name, skipped
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{name}.{ext}" for name in ("long", "short") for ext in ("gif", "mp4", "npz")) + ["summary.json"]
    panel = RESOLUTION * DISPLAY_SCALE
    for name in ("long", "short"):
        frames = gif_frames(out / f"{name}.gif")
        # [truth | 2 samples] under their names, above the footer that marks the prediction's windows
        assert frames.shape == (NUM_FRAMES, HEADER_HEIGHT + panel + FOOTER_HEIGHT, 3 * panel + 2 * GAP, 3)
        with av.open(str(out / f"{name}.mp4")) as container:
            assert sum(1 for _ in container.decode(video=0)) == NUM_FRAMES
        codes = np.load(out / f"{name}.npz")
        # (samples, windows, ...): one window of 16 frames
        assert codes["top"].shape == (2, 1, *TOP_SHAPE) and codes["bottom"].shape == (2, 1, *BOTTOM_SHAPE)
        assert codes["given_top"].shape == (2, 1, *TINY_SPEC.given_top_shape)
        assert codes["given_bottom"].shape == (2, 1, *TINY_SPEC.given_bottom_shape)
        assert (codes["top"][:, :, :1] == codes["given_top"]).all()
        assert (codes["bottom"][:, :, :2] == codes["given_bottom"]).all()
    short = gif_frames(out / "short.gif")[:, HEADER_HEIGHT:, :panel].astype(int)  # ground-truth column
    assert np.abs(short[9] - short[15]).mean() < 1  # padded: the same "no GT" frame
    assert np.abs(short[3] - short[9]).mean() > 10  # real frames differ from the padding
    assert abs(short[12].mean() - 110) < 25  # grey


def test_same_seed_same_video_with_either_sampler_other_seed_differs(checkpoints, videos, tmp_path):
    runs = {}
    for run, seed, sampler in (("a", 5, "naive"), ("b", 5, "cached"), ("c", 6, "cached")):
        args = (f"--seed={seed}", f"--sampler={sampler}", "--num_samples=2")
        assert predict(checkpoints, videos / "long.mp4", tmp_path / run, *args) == 0
        runs[run] = np.load(tmp_path / run / "long.npz")
    for level in ("top", "bottom"):
        assert np.array_equal(runs["a"][level], runs["b"][level])  # cached = naive, bit for bit
    assert (tmp_path / "a" / "long.gif").read_bytes() == (tmp_path / "b" / "long.gif").read_bytes()
    assert not np.array_equal(runs["b"]["bottom"], runs["c"]["bottom"])


def test_only_unreadable_inputs_fail(checkpoints, videos, tmp_path, capsys):
    assert predict(checkpoints, videos / "broken.mp4", tmp_path / "out") == 1
    assert "broken.mp4" in capsys.readouterr().err
    assert predict(checkpoints, tmp_path / "missing.mp4", tmp_path / "out") == 2


def test_embedded_validation_clips(checkpoints, tmp_path):
    assert predict(checkpoints, "embedded:val", tmp_path, "--num_samples=1") == 0
    assert sorted(p.name for p in tmp_path.glob("*.gif")) == ["bigbuckbunny_val.gif", "bikes_val.gif",
                                                             "carphone_pristine_val.gif"]


def test_pipeline_first_frames_are_the_given_frames_reconstruction(checkpoints):
    from vqvideo.lit.bottom_prior_module import load_bottom_prior
    from vqvideo.lit.top_prior_module import load_top_prior
    from vqvideo.lit.vqvae_module import load_vqvae

    models = PredictionModels(load_vqvae(checkpoints["vqvae"]), load_top_prior(checkpoints["top"]),
                              load_bottom_prior(checkpoints["bottom"]))
    clip = torch.rand(2, 3, 4, RESOLUTION, RESOLUTION) * 2 - 1  # only the 4 given frames
    prediction = predict_video(models, clip, NUM_FRAMES, get_sampler("naive"), SamplingOptions(top_k=1), None)
    assert prediction.video.shape == (2, 3, NUM_FRAMES, RESOLUTION, RESOLUTION)
    given = models.vqvae.encode(clip)
    top, bottom = prediction.codes.top[:, 0], prediction.codes.bottom[:, 0]  # the one window
    assert torch.equal(top[:, :1], given.top)
    assert torch.equal(bottom[:, :2], given.bottom)
    assert torch.allclose(prediction.video, models.vqvae.decode_codes(top, bottom).clamp(-1, 1))


def test_priors_of_another_vqvae_are_refused(checkpoints, tmp_path, capsys):
    other = save_checkpoint(tiny_top_module(tiny_code_spec(num_top_codes=32)), tmp_path / "other_top.ckpt")
    assert predict({**checkpoints, "top": other}, "embedded:val", tmp_path / "out") == 2
    assert "num_top_codes 32" in capsys.readouterr().err


def test_a_full_disk_is_one_message(checkpoints, videos, tmp_path, monkeypatch, capsys):
    import errno

    import vqvideo.video_io

    def no_space(path, write):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(vqvideo.video_io, "atomic_write", no_space)
    assert predict(checkpoints, videos / "long.mp4", tmp_path / "out") == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message.startswith(f"vqvideo predict: no space left on the device of {tmp_path / 'out'}")
    assert "needed" in message
