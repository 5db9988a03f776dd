"""Long predictions (`vqvideo predict --num_frames N`): a rollout of windows, each given the previous window's
last frames encoded alone; its first 16 frames are the 16-frame prediction; the CLI writes N-frame videos."""

import numpy as np
import pytest
import torch
from test_predict import RESOLUTION, checkpoints, gif_frames, predict, videos  # noqa: F401 (fixtures)
from tiny_models import CLIP_SHAPE

from vqvideo.models.vqvae import encode_given_frames
from vqvideo.panels import FOOTER_HEIGHT, HEADER_HEIGHT, frame_label
from vqvideo.sampling import SamplingOptions, get_sampler
from vqvideo.sampling.base import task_generator
from vqvideo.sampling.pipeline import PredictionModels, on_uint8_grid, predict_video, window_starts

NUM_FRAMES, NUM_GIVEN = CLIP_SHAPE[0], 4


@pytest.fixture(scope="module")
def models(checkpoints) -> PredictionModels:  # noqa: F811
    from vqvideo.lit.prediction import load_prediction_models

    return load_prediction_models(str(checkpoints["vqvae"]), str(checkpoints["top"]), str(checkpoints["bottom"]))


def generators(seed: int, batch_size: int) -> list[torch.Generator]:
    return [task_generator(seed, row, 0) for row in range(batch_size)]


def rollout(models, clip, num_frames, seed=0):
    return predict_video(models, clip, NUM_FRAMES, get_sampler("cached"), SamplingOptions(), generators(seed, 2),
                         NUM_GIVEN, num_frames)


def test_window_starts_cover_the_requested_frames():
    assert window_starts(16, 16, 4) == [0]
    assert window_starts(28, 16, 4) == [0, 12]
    assert window_starts(40, 16, 4) == [0, 12, 24]
    assert window_starts(41, 16, 4) == [0, 12, 24, 36]  # the last window is cut to length
    with pytest.raises(ValueError, match="at least 16"):
        window_starts(15, 16, 4)


def test_rollout_length_windows_and_its_first_window_is_the_16_frame_prediction(models):
    clip = torch.rand(2, 3, NUM_GIVEN, RESOLUTION, RESOLUTION, generator=torch.Generator().manual_seed(1)) * 2 - 1
    short, long = rollout(models, clip, NUM_FRAMES), rollout(models, clip, 37)
    assert long.video.shape == (2, 3, 37, RESOLUTION, RESOLUTION)
    assert long.window_starts == [0, 12, 24] and long.codes.top.shape[1] == 3
    assert torch.equal(long.video[:, :, :NUM_FRAMES], short.video)
    assert torch.equal(long.codes.top[:, :1], short.codes.top)
    assert torch.equal(long.codes.bottom[:, :1], short.codes.bottom)
    assert not torch.equal(rollout(models, clip, 37, seed=1).codes.bottom, long.codes.bottom)


def test_each_window_is_given_the_previous_windows_last_frames_encoded_alone(models):
    clip = torch.rand(2, 3, NUM_GIVEN, RESOLUTION, RESOLUTION, generator=torch.Generator().manual_seed(2)) * 2 - 1
    prediction = rollout(models, clip, 40)
    for window, start in enumerate(prediction.window_starts[1:], start=1):
        previous_last = prediction.video[:, :, start:start + NUM_GIVEN]  # frames the window was given
        codes = prediction.codes
        decoded = models.vqvae.decode_codes(codes.top[:, window - 1], codes.bottom[:, window - 1])
        assert torch.equal(previous_last, decoded.float().clamp(-1, 1)[:, :, -NUM_GIVEN:])
        expected = encode_given_frames(models.vqvae, on_uint8_grid(previous_last), NUM_GIVEN)
        assert torch.equal(prediction.given_codes.top[:, window], expected.top)
        assert torch.equal(prediction.given_codes.bottom[:, window], expected.bottom)
        # the window's codes start with its given codes, and its first frames are their reconstruction
        assert torch.equal(prediction.codes.top[:, window, :1], expected.top)


def test_rows_do_not_depend_on_their_batch(models):
    clip = torch.rand(2, 3, NUM_GIVEN, RESOLUTION, RESOLUTION, generator=torch.Generator().manual_seed(3)) * 2 - 1
    both = rollout(models, clip, 28)
    alone = predict_video(models, clip[1:], NUM_FRAMES, get_sampler("cached"), SamplingOptions(),
                          [task_generator(0, 1, 0)], NUM_GIVEN, 28)
    assert torch.equal(both.codes.bottom[1:], alone.codes.bottom)


def test_frame_counter_names_each_frames_window():
    starts = window_starts(40, 16, 4)
    assert frame_label(0, 40, starts, 4) == "frame 1/40 · given"
    assert frame_label(15, 40, starts, 4) == "frame 16/40 · window 1"
    assert frame_label(16, 40, starts, 4) == "frame 17/40 · window 2"
    assert frame_label(39, 40, starts, 4) == "frame 40/40 · window 3"


def test_cli_rollout_writes_n_frames_and_says_when_ground_truth_runs_out(
    checkpoints, videos, tmp_path, capsys  # noqa: F811
):
    out = tmp_path / "rollout"
    assert predict(checkpoints, videos / "long.mp4", out, "--num_samples=2", "--num_frames=30") == 0
    assert "has 20 of the 30 frames" in capsys.readouterr().err  # ground truth shown for the frames it has
    frames = gif_frames(out / "long.gif")
    assert frames.shape[0] == 30 and frames.shape[1] == HEADER_HEIGHT + RESOLUTION * 4 + FOOTER_HEIGHT
    codes = np.load(out / "long.npz")
    assert codes["top"].shape[:2] == (2, 3)  # 2 samples × windows starting at 0, 12, 24
    first = tmp_path / "first"
    assert predict(checkpoints, videos / "long.mp4", first, "--num_samples=2") == 0
    assert np.array_equal(np.load(first / "long.npz")["bottom"][:, 0], codes["bottom"][:, 0])
    assert predict(checkpoints, videos / "long.mp4", tmp_path / "bad", "--num_frames=8") == 2
