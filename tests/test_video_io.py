"""Video writers: value mapping, GIF frames, MP4 readable by PyAV, atomic writes, clear errors."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
import torch
from PIL import Image

from vqvideo.video_io import gif_bytes, rgb_to_yuv420p, video_to_uint8, write_gif, write_mp4


def test_video_to_uint8_maps_range_and_layout():
    video = torch.zeros(2, 3, 4, 5, 6)
    video[:, 0] = -1.0
    video[:, 1] = 1.0
    video[:, 2] = 2.0  # clamped
    frames = video_to_uint8(video)
    assert frames.shape == (2, 4, 5, 6, 3) and frames.dtype == np.uint8
    assert (frames[..., 0] == 0).all() and (frames[..., 1] == 255).all() and (frames[..., 2] == 255).all()
    assert video_to_uint8(video[0]).shape == (4, 5, 6, 3)
    with pytest.raises(ValueError, match="3 channels"):
        video_to_uint8(torch.zeros(1, 4, 4, 5, 6))


def test_gif_has_every_frame():
    frames = np.stack([np.full((8, 10, 3), 30 * i, dtype=np.uint8) for i in range(5)])
    image = Image.open(io.BytesIO(gif_bytes(frames, fps=5)))
    assert image.n_frames == 5 and image.size == (10, 8)
    with pytest.raises(ValueError, match="uint8"):
        gif_bytes(frames.astype(np.float32))


def test_write_gif_and_mp4_atomically(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (6, 17, 22, 3), dtype=np.uint8)  # odd height: padded for yuv420p
    gif_path = write_gif(tmp_path / "a" / "clip.gif", frames)
    mp4_path = write_mp4(tmp_path / "clip.mp4", frames, fps=6)
    assert Image.open(gif_path).n_frames == 6
    with av.open(str(mp4_path)) as container:
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(decoded) == 6 and decoded[0].shape == (18, 22, 3)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["clip.gif", "clip.mp4"]  # no temp left


def test_mp4_colours_survive_our_yuv_conversion(tmp_path):
    """The numpy RGB→YUV 4:2:0 conversion agrees with FFmpeg's (±1 level) and flat colours decode back to themselves."""
    colours = np.array([[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255], [120, 60, 200]], np.uint8)
    frames = np.repeat(colours[:, None, None, :], 16, axis=1).repeat(16, axis=2)  # (6, 16, 16, 3) flat frames
    for frame in frames:
        ffmpeg = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p").to_ndarray()
        assert np.abs(rgb_to_yuv420p(frame).astype(int) - ffmpeg.astype(int)).max() <= 1
    with av.open(str(write_mp4(tmp_path / "flat.mp4", frames, fps=6))) as container:
        decoded = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])
    assert np.abs(decoded.astype(int) - frames.astype(int)).max() <= 4
