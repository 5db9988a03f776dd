"""`vqvideo predict` end to end on tiny real checkpoints made here: frames, layout, codes, seeds, bad inputs."""

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from vqvideo.cli import main as vqvideo_main
from vqvideo.lit.bottom_prior_module import BottomPriorModule
from vqvideo.lit.top_prior_module import TopPriorModule
from vqvideo.lit.vqvae_module import VQVAEModule
from vqvideo.sampling.panels import GAP, HEADER_HEIGHT, prediction_panel
from vqvideo.sampling.pipeline import PredictionModels, predict_video
from vqvideo.sampling import SamplingOptions, get_sampler

NUM_CODES, RESOLUTION, NUM_FRAMES = 16, 32, 16  # → top (4, 4, 4), bottom (8, 8, 8); given: (1, 4, 4), (2, 8, 8)
TOP_SHAPE, BOTTOM_SHAPE = (4, 4, 4), (8, 8, 8)
DISPLAY_SCALE = 128 // RESOLUTION  # predict upscales panels below 128 px


def save_checkpoint(module, path: Path, datamodule_hparams: dict | None = None) -> Path:
    """What Lightning's ModelCheckpoint stores and `load_stage` reads: weights and constructor arguments."""
    checkpoint = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}
    if datamodule_hparams:
        checkpoint["datamodule_hyper_parameters"] = datamodule_hparams
    torch.save(checkpoint, path)
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("checkpoints")
    torch.manual_seed(0)
    vqvae = VQVAEModule(hidden_channels=16, residual_channels=8, num_residual_layers=1, num_top_codes=NUM_CODES,
                        num_bottom_codes=NUM_CODES, code_dim=8, num_frames=NUM_FRAMES, resolution=RESOLUTION)
    latent = dict(top_shape=TOP_SHAPE, bottom_shape=BOTTOM_SHAPE)
    top = TopPriorModule(num_top_codes=NUM_CODES, num_bottom_codes=NUM_CODES, **latent, cond_top_shape=(1, 4, 4),
                         cond_bottom_shape=(2, 8, 8), channels=16, residual_channels=16, num_layers=2,
                         attention_every=1, num_heads=2, cond_embed_channels=8, cond_downsampled_channels=8,
                         cond_channels=8, cond_residual_channels=8, num_cond_res_blocks=1)
    bottom = BottomPriorModule(num_codes=NUM_CODES, num_top_codes=NUM_CODES, **latent, num_given_slices=2,
                               hidden_channels=16, residual_channels=16, num_layers=2, num_attention_layers=1,
                               num_heads=2, top_embed_dim=8, top_channels=8, bottom_embed_dim=8, window_channels=8,
                               cond_channels=8, cond_residual_channels=8, num_cond_blocks=1)
    data = {"_class_path": "vqvideo.data.datamodule.KineticsDataModule", "num_frames": NUM_FRAMES,
            "resolution": RESOLUTION, "frame_stride": 1, "val_fraction": 0.2}  # as LightningCLI saves it
    return {"vqvae": save_checkpoint(vqvae, root / "vqvae.ckpt", data),
            "top": save_checkpoint(top, root / "top_prior.ckpt"),
            "bottom": save_checkpoint(bottom, root / "bottom_prior.ckpt")}


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
        assert frames.shape == (NUM_FRAMES, HEADER_HEIGHT + panel, 3 * panel + 2 * GAP, 3)  # [truth | 2 samples]
        with av.open(str(out / f"{name}.mp4")) as container:
            assert sum(1 for _ in container.decode(video=0)) == NUM_FRAMES
        codes = np.load(out / f"{name}.npz")
        assert codes["top"].shape == (2, *TOP_SHAPE) and codes["bottom"].shape == (2, *BOTTOM_SHAPE)
        assert codes["given_top"].shape == (1, 4, 4) and codes["given_bottom"].shape == (2, 8, 8)
        assert (codes["top"][:, :1] == codes["given_top"]).all()
        assert (codes["bottom"][:, :2] == codes["given_bottom"]).all()
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
    assert torch.equal(prediction.codes.top[:, :1], given.top)
    assert torch.equal(prediction.codes.bottom[:, :2], given.bottom)
    assert torch.allclose(prediction.video, models.vqvae.decode_codes(*prediction.codes).clamp(-1, 1))


def test_panel_layout_marks_given_and_predicted_frames():
    truth = np.full((16, 8, 8, 3), 50, np.uint8)
    samples = np.full((3, 16, 8, 8, 3), 200, np.uint8)
    panel = prediction_panel(truth, samples, num_given=4)
    assert panel.shape == (16, HEADER_HEIGHT + 8, 4 * 8 + 3 * GAP, 3)
    sample_corner = lambda t: tuple(panel[t, HEADER_HEIGHT, 8 + GAP])  # noqa: E731  first sample's top-left
    assert sample_corner(0) == (40, 200, 70) and sample_corner(4) == (230, 50, 50)  # green given, red predicted
