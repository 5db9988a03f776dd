"""Turning model video tensors into files: uint8 frames, animated GIF (Pillow) and MP4 (PyAV).

Every writer is atomic: it writes a temporary file next to the target and renames it, so an interrupted
run never leaves a truncated video behind.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from PIL import Image

from vqvideo.files import atomic_write


def video_to_uint8(video: torch.Tensor) -> np.ndarray:
    """video: (3, T, H, W) or (B, 3, T, H, W) float in [-1, 1] -> uint8 numpy (..., T, H, W, 3)."""
    if video.dim() not in (4, 5) or video.shape[-4] != 3:
        raise ValueError(f"video must be (3, T, H, W) or (B, 3, T, H, W) with 3 channels, got {tuple(video.shape)}")
    pixels = ((video.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()
    return rearrange(pixels, "... c t h w -> ... t h w c").numpy()


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}; use video_to_uint8")
    return frames


def gif_bytes(frames: np.ndarray, fps: float = 8.0) -> bytes:
    """frames: uint8 (T, H, W, 3) -> an animated, looping GIF as bytes."""
    frames = _check_frames(frames)
    images = [Image.fromarray(frame) for frame in frames]
    buffer = io.BytesIO()
    images[0].save(
        buffer, format="GIF", save_all=True, append_images=images[1:], duration=max(1, round(1000 / fps)), loop=0
    )
    return buffer.getvalue()


def write_gif(path: str | Path, frames: np.ndarray, fps: float = 8.0) -> Path:
    """frames: uint8 (T, H, W, 3) -> animated GIF at `path` (atomic)."""
    data = gif_bytes(frames, fps)
    return atomic_write(path, lambda temp: temp.write_bytes(data))


def write_mp4(path: str | Path, frames: np.ndarray, fps: float = 8.0) -> Path:
    """frames: uint8 (T, H, W, 3) -> H.264 MP4 (mpeg4 if this FFmpeg lacks libx264) at `path` (atomic).

    Odd heights/widths are padded by one pixel (yuv420p needs even sizes)."""
    import av  # PyAV: a core dependency (pyproject), imported here so plain model use does not load FFmpeg

    frames = _check_frames(frames)
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"

    def write(temp: Path) -> None:
        with av.open(str(temp), mode="w", format="mp4") as container:
            stream = container.add_stream(codec, rate=round(fps))
            stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
            stream.thread_count = 1  # x264's output depends on its thread count: same frames, same file anywhere
            for frame in frames:
                # converted to YUV here: left to the stream, the conversion sometimes rounded differently in a
                # process that had done other work, so the same frames gave different files
                yuv = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p")
                for packet in stream.encode(yuv):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)

    return atomic_write(path, write)
