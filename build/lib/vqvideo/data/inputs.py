"""What `vqvideo predict` and `vqvideo eval` read: which clip of which file, at the size the models were trained on.

Clip length, resolution, frame stride and the validation split are the VQ-VAE's training data (`InputSpec`, built
by the tools from its checkpoint), never re-typed. Frames go through `vqvideo.data.video.read_clip`, the one
function that turns files into model input (shorter side resized, center crop).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from vqvideo.data.index import probe_video
from vqvideo.data.sources import embedded_clips, find_videos
from vqvideo.data.video import VideoReadError, read_clip
from vqvideo.data.windows import split_frame_range, stride_for_fps

EMBEDDED_VAL = "embedded:val"
DEFAULT_FPS = 8.0  # when a container does not say


@dataclass(frozen=True)
class InputSpec:
    """How the models' training clips were made, and how many frames prediction is given."""

    num_frames: int  # clip length the VQ-VAE was trained on (16)
    resolution: int  # square crop size (64 demo, 256 paper)
    frame_stride: int
    target_fps: float | None  # if set, the stride is round(video fps / target_fps) per video
    val_fraction: float  # embedded clips: the last val_fraction of each video's frames is held out
    num_given_frames: int


@dataclass(frozen=True)
class InputSource:
    name: str  # output file stem
    path: str
    start_frame: int


@dataclass
class LoadedInput:
    """clip: (3, Tr, H, W) float32 in [-1, 1], num_given_frames <= Tr <= the frames asked for (fewer if the video
    ends first)."""

    name: str
    source: str
    start_frame: int
    frame_stride: int
    fps: float
    clip: torch.Tensor


def resolve_inputs(input_arg: str, start_frame: int, spec: InputSpec) -> list[InputSource]:
    """A video file, a folder of videos (recursive), or 'embedded:val' → the sources to predict."""
    if start_frame < 0:
        raise ValueError(f"--start_frame must be >= 0, got {start_frame}")
    if input_arg == EMBEDDED_VAL:
        sources = []
        for path in embedded_clips():
            probe = probe_video(str(path))
            held_out = split_frame_range(probe.num_frames, "val", spec.val_fraction).start if probe.readable else 0
            sources.append(InputSource(f"{path.stem}_val", str(path), held_out + start_frame))
        return sources
    path = Path(input_arg).expanduser()
    if path.is_dir():
        files = find_videos(path)
        if not files:
            raise FileNotFoundError(f"--input {path} is a folder without video files (.mp4, .avi, .mkv, .webm, .mov)")
    elif path.is_file():
        files = [path]
    else:
        raise FileNotFoundError(f"--input {path} does not exist: pass a video file, a folder, or {EMBEDDED_VAL}")
    return [InputSource(name, str(file), start_frame) for name, file in zip(unique_names(files), files)]


def unique_names(files: list[Path]) -> list[str]:
    """File stems, made unique with a numeric suffix (a/clip.mp4 and b/clip.mp4 → clip, clip_2)."""
    seen: dict[str, int] = {}
    names = []
    for file in files:
        count = seen[file.stem] = seen.get(file.stem, 0) + 1
        names.append(file.stem if count == 1 else f"{file.stem}_{count}")
    return names


def load_input(source: InputSource, spec: InputSpec, num_frames: int | None = None) -> LoadedInput:
    """Read up to `num_frames` (default spec.num_frames) clip frames from source.start_frame: the given frames and
    as much ground truth as the video holds. Raises VideoReadError (file + reason)."""
    probe = probe_video(source.path)
    if not probe.readable:
        raise VideoReadError(source.path, probe.reason)
    stride = stride_for_fps(probe.fps, spec.target_fps, spec.frame_stride)
    available = max(0, (probe.num_frames - 1 - source.start_frame) // stride + 1)
    if available < spec.num_given_frames:
        raise VideoReadError(
            source.path,
            f"{probe.num_frames} frames: from frame {source.start_frame} at stride {stride} it has {available} "
            f"clip frame(s), prediction needs {spec.num_given_frames} given frames (lower --start_frame)",
        )
    frames = min(available, num_frames or spec.num_frames)
    clip = read_clip(source.path, source.start_frame, frames, stride, spec.resolution, crop="center",
                     source_size=(probe.height, probe.width))
    fps = probe.fps / stride if probe.fps > 0 else DEFAULT_FPS
    return LoadedInput(source.name, source.path, source.start_frame, stride, fps, clip)


def load_inputs(sources: list[InputSource], spec: InputSpec,
                num_frames: int | None = None) -> tuple[list[LoadedInput], list[tuple[str, str]]]:
    """Every readable source (up to `num_frames` frames each), and (file, reason) for each one skipped."""
    loaded, skipped = [], []
    for source in sources:
        try:
            loaded.append(load_input(source, spec, num_frames))
        except VideoReadError as error:
            skipped.append((source.path, error.reason))
    return loaded, skipped
