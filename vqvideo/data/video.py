"""Turn a video file into model input: the one place frames are decoded, resized and cropped.

decord decodes only the frames a clip needs (`get_batch` of their indices; a fresh `VideoReader` per call,
so nothing decoder-related crosses a fork — decord #294 — and no reader accumulates memory, #197/#208).
Resizing happens inside the decoder's pixel-format conversion (libswscale, area-aware when shrinking): for
a 720p source and a 64 px clip this makes decoding ~2.5x faster than converting full frames to RGB and
resizing them in torch.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

CROPS = ("center", "random")
DECODE_DEVICES = ("cpu", "gpu")
GPU_DECODE_HELP = (
    "decode_device='gpu' needs decord built with CUDA (NVDEC); the decord wheel on PyPI is CPU-only. "
    "Build it from source: install the NVIDIA Video Codec SDK headers and FFmpeg dev libraries "
    "(apt-get install libavcodec-dev libavformat-dev libavutil-dev libavfilter-dev libswscale-dev), then "
    "`git clone --recursive https://github.com/dmlc/decord && cd decord && mkdir build && cd build && "
    "cmake .. -DUSE_CUDA=ON -DCMAKE_BUILD_TYPE=Release && make -j && cd ../python && pip install .`. "
    "Or use decode_device='cpu'."
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


def decord_context(decode_device: str, device_id: int = 0):
    """decord's decode context for 'cpu' or 'gpu' (the given CUDA device)."""
    import decord

    if decode_device not in DECODE_DEVICES:
        raise ValueError(f"decode_device must be one of {DECODE_DEVICES}, got {decode_device!r}")
    return decord.cpu(0) if decode_device == "cpu" else decord.gpu(device_id)


def decode_frames(path: str, frame_indices: list[int], size: FrameSize, decode_device: str = "cpu",
                  device_id: int = 0, num_threads: int = 1) -> torch.Tensor:
    """Frames `frame_indices` of `path` decoded at `size`: (T, H, W, 3) uint8 on the CPU."""
    import decord

    context = decord_context(decode_device, device_id)
    try:
        reader = decord.VideoReader(path, ctx=context, width=size.width, height=size.height,
                                    num_threads=num_threads)
    except (decord.DECORDError, RuntimeError) as error:  # decord raises RuntimeError for unopenable files
        if "CUDA not enabled" in str(error):
            raise GpuDecodeUnavailable(GPU_DECODE_HELP) from error
        raise VideoReadError(path, f"decord cannot open it ({str(error).strip()[-200:]})") from error
    try:
        if frame_indices[-1] >= len(reader):
            raise VideoReadError(path, f"too short: frame {frame_indices[-1]} requested, {len(reader)} frames")
        frames = reader.get_batch(frame_indices).asnumpy()
    except (decord.DECORDError, RuntimeError) as error:
        raise VideoReadError(path, f"decoding failed ({str(error).strip()[-200:]})") from error
    finally:
        del reader
    return torch.from_numpy(frames)


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


def read_clip(path: str, start_frame: int, num_frames: int, frame_stride: int = 1, resolution: int = 64,
              crop: str = "center", flip: bool = False, decode_device: str = "cpu",
              generator: torch.Generator | None = None, device_id: int = 0,
              source_size: tuple[int, int] | None = None) -> torch.Tensor:
    """Frames start_frame, start_frame + frame_stride, ... of `path` as model input.

    Shorter side resized to `resolution`, then a center or random `resolution`-square crop, optionally
    flipped left-right. `source_size` (height, width) skips probing the header when the caller knows it.
    Returns: (3, T, H, W) float32 in [-1, 1] with T = num_frames, H = W = resolution.
    Raises VideoReadError (file + reason) or GpuDecodeUnavailable.
    """
    if start_frame < 0:
        raise ValueError(f"start_frame must be >= 0, got {start_frame}")
    size = FrameSize(*source_size) if source_size is not None else probe_frame_size(path)
    target = resized_size(size, resolution)
    frame_indices = [start_frame + i * frame_stride for i in range(num_frames)]
    frames = decode_frames(path, frame_indices, target, decode_device, device_id)  # (T, H', W', 3) uint8
    if min(frames.shape[1:3]) < resolution:  # a decoder that ignored the requested size
        frames = resize_frames(frames, target)
    target = FrameSize(*frames.shape[1:3])  # decoders may round odd sizes
    top, left = crop_offsets(target, resolution, crop, generator)
    frames = frames[:, top:top + resolution, left:left + resolution]  # (T, res, res, 3)
    if flip:
        frames = frames.flip(2)
    video = frames.permute(3, 0, 1, 2).float()  # (3, T, res, res)
    return video.div_(127.5).sub_(1.0)
