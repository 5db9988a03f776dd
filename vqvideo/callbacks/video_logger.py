"""Video summaries for TensorBoard as animated GIF image summaries encoded with Pillow.

`SummaryWriter.add_video` imports `moviepy.editor`, which moviepy 2 removed: it then logs nothing and
raises nothing (see PITFALLS). Writing the GIF ourselves needs only Pillow, and TensorBoard's image tab
plays animated GIFs.
"""

from __future__ import annotations

import torch
from einops import rearrange
from tensorboard.compat.proto.summary_pb2 import Summary

from vqvideo.video_io import gif_bytes, video_to_uint8


def video_grid(video: torch.Tensor) -> torch.Tensor:
    """video: (N, 3, T, H, W) -> (3, T, N*H, W): the N clips stacked top to bottom, one per row."""
    return rearrange(video, "n c t h w -> c t (n h) w")


def log_video(logger_experiment, tag: str, video: torch.Tensor, step: int, fps: float = 8.0) -> None:
    """Write `video` (N, 3, T, H, W) float in [-1, 1] as one animated GIF image summary at `step`.

    logger_experiment: a torch.utils.tensorboard.SummaryWriter (`TensorBoardLogger.experiment`)."""
    if video.dim() != 5:
        raise ValueError(f"log_video expects (N, 3, T, H, W), got {tuple(video.shape)}")
    frames = video_to_uint8(video_grid(video))  # (T, N*H, W, 3) uint8
    image = Summary.Image(
        height=frames.shape[1], width=frames.shape[2], colorspace=3, encoded_image_string=gif_bytes(frames, fps)
    )
    summary = Summary(value=[Summary.Value(tag=tag, image=image)])
    logger_experiment._get_file_writer().add_summary(summary, step)
