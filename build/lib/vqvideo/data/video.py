"""Turn a video file into model input: the one place frames are decoded (decord), resized and cropped.

decord (the maintained `decord2` package, imported as `decord`) decodes only the frames a clip needs, with
a fresh `VideoReader` per call, so nothing decoder-related crosses a fork (decord #294). Resizing happens
inside the decoder's pixel-format conversion (libswscale, area-aware when shrinking): for a 720p source and
a 64 px clip this is ~2.5x faster than converting full frames to RGB and resizing them in torch.

What decord does on awkward files, measured with decord 0.6.0 and decord2 3.4.0 alike, and what we do:
- FFmpeg's frame threads make error concealment timing-dependent: a damaged H.264 stream decoded with
  several threads gave different pixels from run to run. One decoding thread gives the same bytes every run.
- Without presentation timestamps (H.264 in AVI) decord's seek lands on the wrong frame (frame 12 read as
  frame 0; decord #195, #252). Such files are decoded in order from frame 0 instead of seeking.
- decord reads ahead of the frames asked for, so one packet it cannot decode (a truncated download) makes
  clips anywhere before it fail at random. `scan_video` decodes every frame once, in order, so the index
  can skip such a file by name instead.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np
import torch

CROPS = ("center", "random")
DECODE_DEVICES = ("cpu", "gpu")
DECODE_THREADS = 1  # see the module docstring: more threads make damaged streams decode differently per run
REPEAT_TOLERANCE = 1e-9  # decord's fault_tol: raise instead of silently repeating a frame it could not decode
SCAN_RESOLUTION = 64  # `scan_video` decodes at this shorter side: the pass checks decoding, not pixels
SCAN_CHUNK = 64  # frames per get_batch in the in-order pass
MAX_SEEK_CHECKS = 8  # keyframes whose seek `scan_video` compares with the in-order pass
GPU_DECODE_HELP = (
    "decode_device='gpu' needs decord2 built with CUDA (NVDEC), and this one is not (decord: {said}). The "
    "decord2 wheels on PyPI for Linux and Windows are CPU-only. Install a CUDA build of decord2 (its +cuXXX "
    "wheels from https://github.com/johnnynunez/decord2/releases, then `pip install 'decord2[cu13]'` for the "
    "CUDA runtime; the NVIDIA driver provides libcuda and libnvcuvid), or use decode_device='cpu'."
)


class VideoReadError(RuntimeError):
    """A video that cannot be turned into the requested clip; the message names the file and the reason."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class GpuDecodeUnavailable(RuntimeError):
    """decode_device='gpu' with a decord build that has no CUDA support."""


class FrameSize(NamedTuple):
    height: int
    width: int


class VideoScan(NamedTuple):
    """What `scan_video` found: frames 0 .. num_frames - 1 all decode, in order and after a seek alike."""

    num_frames: int
    fps: float
    seeks: bool  # False: decord's timestamps are unusable, clips are decoded in order from frame 0


def probe_frame_size(path: str) -> FrameSize:
    """Height and width of the first video stream, from the container header (no decoding)."""
    import av

    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            return FrameSize(stream.codec_context.height, stream.codec_context.width)
    except (av.FFmpegError, IndexError, OSError) as error:
        raise VideoReadError(path, f"cannot open as video ({error})") from error


def resized_size(source: FrameSize, resolution: int) -> FrameSize:
    """Size with the shorter side equal to `resolution` and the aspect ratio kept (both >= resolution)."""
    scale = resolution / min(source.height, source.width)
    return FrameSize(max(resolution, round(source.height * scale)), max(resolution, round(source.width * scale)))


def decoder_version() -> str:
    """The decoder frames come from (the index records it: another version may decode other frames)."""
    import decord

    return f"decord {decord.__version__}"


def decord_context(decode_device: str, device_id: int = 0):
    """decord's decode context for 'cpu' or 'gpu' (the given CUDA device)."""
    import decord

    if decode_device not in DECODE_DEVICES:
        raise ValueError(f"decode_device must be one of {DECODE_DEVICES}, got {decode_device!r}")
    return decord.cpu(0) if decode_device == "cpu" else decord.gpu(device_id)


def _decord_errors() -> tuple[type[Exception], ...]:
    """What decord raises: DECORDLimitReachedError (a repeated frame, see REPEAT_TOLERANCE) is no DECORDError;
    an unopenable file gives RuntimeError, a file without frames AssertionError."""
    import decord

    return decord.DECORDError, decord.DECORDLimitReachedError, RuntimeError, AssertionError


def _said(error: Exception) -> str:
    """A decord error without its timestamps and C++ source locations ("[08:18:00] /src/x.cc:218: ")."""
    text = re.sub(r"\[\d\d:\d\d:\d\d\] \S+:\d+: ", "", " ".join(str(error).split()))
    return (text or type(error).__name__)[-200:]


def open_reader(path: str, size: FrameSize | None = None, decode_device: str = "cpu", device_id: int = 0):
    """A fresh decord VideoReader (output at `size`, or the source size); drop it when done."""
    import decord

    context = decord_context(decode_device, device_id)
    width, height = (size.width, size.height) if size is not None else (-1, -1)
    try:
        return decord.VideoReader(path, ctx=context, width=width, height=height, num_threads=DECODE_THREADS,
                                  fault_tol=REPEAT_TOLERANCE)
    except _decord_errors() as error:  # decord raises RuntimeError for unopenable files
        said = _said(error)
        if "CUDA not enabled" in said or "GPU acceleration not available" in said:
            raise GpuDecodeUnavailable(GPU_DECODE_HELP.format(said=said)) from None
        raise VideoReadError(path, f"decord cannot open it ({said})") from None


def seeks_exactly(reader) -> bool:
    """Whether decord can seek in this file: every frame has a distinct, increasing presentation time."""
    stamps = reader.get_frame_timestamp(list(range(len(reader))))[:, 0]
    return bool(np.all(np.isfinite(stamps)) and stamps.min() > -1e6 and np.all(np.diff(stamps) > 0))


def read_in_order(reader, frame_indices: list[int], chunk: int = SCAN_CHUNK) -> np.ndarray:
    """Frames `frame_indices` of a fresh reader, decoded in order from frame 0 (no seek): (T, H, W, 3) uint8."""
    wanted, found = set(frame_indices), {}
    last = max(frame_indices)
    for start in range(0, last + 1, chunk):
        block = reader.get_batch(list(range(start, min(last + 1, start + chunk)))).asnumpy()
        found.update({start + i: frame for i, frame in enumerate(block) if start + i in wanted})
    return np.stack([found[i] for i in frame_indices])


class _WidthCopyFailure(Exception):
    """decord cannot copy frames of some even output widths (8, 16, 24, 32, 48, 96, 144 ... px) out."""


def _decode(path: str, frame_indices: list[int], size: FrameSize, decode_device: str, device_id: int) -> np.ndarray:
    reader = open_reader(path, size, decode_device, device_id)
    frames = None
    try:
        num_frames = len(reader)
        if max(frame_indices) < num_frames:
            seek = seeks_exactly(reader)
            frames = reader.get_batch(frame_indices).asnumpy() if seek else read_in_order(reader, frame_indices)
    except _decord_errors() as error:
        if "DECORDArrayCopyFromTo" in str(error):
            raise _WidthCopyFailure() from None
        raise VideoReadError(path, f"decoding failed ({_said(error)})") from None
    finally:
        del reader
    if frames is None:
        raise VideoReadError(path, f"too short: frame {max(frame_indices)} requested, {num_frames} frames")
    return frames


def decode_frames(path: str, frame_indices: list[int], size: FrameSize, decode_device: str = "cpu",
                  device_id: int = 0) -> torch.Tensor:
    """Frames `frame_indices` of `path` decoded at `size`: (T, H, W, 3) uint8 on the CPU."""
    try:
        return torch.from_numpy(_decode(path, frame_indices, size, decode_device, device_id))
    except _WidthCopyFailure:
        wider = FrameSize(size.height, size.width + 1)  # odd widths always copy out
    try:
        frames = _decode(path, frame_indices, wider, decode_device, device_id)
    except _WidthCopyFailure:
        raise VideoReadError(path, f"decord cannot output frames {wider.width} or {size.width} px wide") from None
    return resize_frames(torch.from_numpy(frames), size)


def _seek_check_keys(key_indices: list[int], num_frames: int) -> list[int]:
    """Up to MAX_SEEK_CHECKS keyframes after frame 0, evenly spread."""
    keys = [k for k in key_indices if 0 < k < num_frames]
    if len(keys) <= MAX_SEEK_CHECKS:
        return keys
    return [keys[(2 * i + 1) * len(keys) // (2 * MAX_SEEK_CHECKS)] for i in range(MAX_SEEK_CHECKS)]


def _scan_failure(error: Exception, start: int, num_frames: int) -> str:
    import decord

    if isinstance(error, decord.DECORDLimitReachedError):
        return (f"damaged: decord repeats frames it cannot decode (at or after frame {start} of {num_frames}; "
                "e.g. a stream cut before its first keyframe), so its frame numbers are wrong. Fix: re-encode it")
    return (f"truncated or damaged: decord fails on a frame at or after {start} of {num_frames} ({_said(error)}); "
            "it reads ahead, so clips before that frame fail at random too. Fix: re-download or re-encode it")


def _scan_in_order(path: str, size: FrameSize) -> tuple[VideoScan, list[int], dict[int, np.ndarray]]:
    """Decode every frame once, in order: (scan, keyframes to seek to, their and their next frames in order)."""
    reader = open_reader(path, size)
    start, num_frames = 0, len(reader)
    try:
        scan = VideoScan(num_frames, float(reader.get_avg_fps()), seeks_exactly(reader))
        keys = _seek_check_keys(reader.get_key_indices(), num_frames) if scan.seeks else []
        checks = {f for k in keys for f in (k, k + 1) if f < num_frames}
        found = {}
        for start in range(0, num_frames, SCAN_CHUNK):
            block = reader.get_batch(list(range(start, min(num_frames, start + SCAN_CHUNK)))).asnumpy()
            found.update({f: block[f - start] for f in checks if start <= f < start + len(block)})
    except _decord_errors() as error:
        raise VideoReadError(path, _scan_failure(error, start, num_frames)) from None
    finally:
        del reader
    return scan, keys, found


def scan_video(path: str, source: FrameSize) -> VideoScan:
    """Check that decord delivers every frame of `path`, and the same frame after a seek as in order.

    Decodes each frame once (at SCAN_RESOLUTION), then re-reads up to MAX_SEEK_CHECKS keyframes (and the
    frame after each) through `decode_frames`, the path clips take. Raises VideoReadError with the reason.
    """
    size = resized_size(source, SCAN_RESOLUTION)
    size = FrameSize(size.height, size.width | 1)  # an odd width avoids decord's copy failure at some widths
    scan, keys, in_order = _scan_in_order(path, size)
    for key in keys:
        frames = [key, key + 1] if key + 1 < scan.num_frames else [key]
        after_seek = decode_frames(path, frames, size).numpy()
        for frame, picture in zip(frames, after_seek):
            if not np.array_equal(picture, in_order[frame]):
                raise VideoReadError(path, f"decord returns another picture for frame {frame} after a seek than in "
                                           "order (an open GOP, or timestamps that do not match the frames). Fix: "
                                           "re-encode with closed GOPs, e.g. ffmpeg -i IN -c:v libx264 OUT.mp4")
    return scan


def resize_frames(frames: torch.Tensor, size: FrameSize) -> torch.Tensor:
    """frames: (T, H, W, 3) uint8 -> (T, size.height, size.width, 3) uint8, antialiased bilinear."""
    channels_first = frames.permute(0, 3, 1, 2).float()  # (T, 3, H, W)
    resized = torch.nn.functional.interpolate(channels_first, size=tuple(size), mode="bilinear",
                                              antialias=True, align_corners=False)
    return resized.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


def crop_offsets(size: FrameSize, resolution: int, crop: str, generator: torch.Generator | None) -> FrameSize:
    """Top-left corner of a resolution x resolution crop: centered, or uniform over valid positions."""
    if crop not in CROPS:
        raise ValueError(f"crop must be one of {CROPS}, got {crop!r}")
    if crop == "center":
        return FrameSize((size.height - resolution) // 2, (size.width - resolution) // 2)
    top = int(torch.randint(size.height - resolution + 1, (1,), generator=generator))
    left = int(torch.randint(size.width - resolution + 1, (1,), generator=generator))
    return FrameSize(top, left)


def resized_frames(path: str, frame_indices: list[int], resolution: int, decode_device: str = "cpu",
                   device_id: int = 0, source_size: tuple[int, int] | None = None) -> torch.Tensor:
    """Frames `frame_indices` of `path` with the shorter side resized to `resolution` (aspect kept): what every
    clip is cut from. `source_size` (height, width) skips probing the header when the caller knows it.
    Returns: (T, H', W', 3) uint8 with min(H', W') == resolution (a decoder may round the longer side)."""
    size = FrameSize(*source_size) if source_size is not None else probe_frame_size(path)
    target = resized_size(size, resolution)
    frames = decode_frames(path, frame_indices, target, decode_device, device_id)  # (T, H', W', 3) uint8
    if min(frames.shape[1:3]) < resolution:  # a decoder that ignored the requested size
        frames = resize_frames(frames, target)
    return frames


def cut_clip(frames: torch.Tensor, resolution: int, crop: str = "center", flip: bool = False,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """frames (T, H', W', 3) uint8 from `resized_frames` -> a center or random `resolution`-square crop,
    optionally flipped left-right, as model input: (3, T, resolution, resolution) float32 in [-1, 1]."""
    top, left = crop_offsets(FrameSize(*frames.shape[1:3]), resolution, crop, generator)
    frames = frames[:, top:top + resolution, left:left + resolution]  # (T, res, res, 3)
    if flip:
        frames = frames.flip(2)
    video = frames.permute(3, 0, 1, 2).float()  # (3, T, res, res)
    return video.div_(127.5).sub_(1.0)


def read_clip(path: str, start_frame: int, num_frames: int, frame_stride: int = 1, resolution: int = 64,
              crop: str = "center", flip: bool = False, decode_device: str = "cpu",
              generator: torch.Generator | None = None, device_id: int = 0,
              source_size: tuple[int, int] | None = None) -> torch.Tensor:
    """Frames start_frame, start_frame + frame_stride, ... of `path` as model input.

    Shorter side resized to `resolution`, then a center or random `resolution`-square crop, optionally
    flipped left-right (`resized_frames`, then `cut_clip`). `source_size` (height, width) skips probing the
    header when the caller knows it.
    Returns: (3, T, H, W) float32 in [-1, 1] with T = num_frames, H = W = resolution.
    Raises VideoReadError (file + reason) or GpuDecodeUnavailable.
    """
    if start_frame < 0:
        raise ValueError(f"start_frame must be >= 0, got {start_frame}")
    frame_indices = [start_frame + i * frame_stride for i in range(num_frames)]
    frames = resized_frames(path, frame_indices, resolution, decode_device, device_id, source_size)
    return cut_clip(frames, resolution, crop, flip, generator)
