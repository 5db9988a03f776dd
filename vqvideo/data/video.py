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
- Stream-copy cuts (edit-list pre-roll), open GOPs, damaged tails: decord's seek or its frame count differs from
  what FFmpeg presents. The index probe (`vqvideo.data.scan`) finds the frames that read exactly, and whether a
  how clips of a file must be read (`VideoEntry.read_mode`); callers pass that as `read_mode`.
"""

from __future__ import annotations

import re
from typing import Iterator, NamedTuple

import numpy as np
import torch

CROPS = ("center", "random")
DECODE_DEVICES = ("cpu", "gpu")
DECODE_THREADS = 1  # see the module docstring: more threads make damaged streams decode differently per run
REPEAT_TOLERANCE = 1e-9  # decord's fault_tol: raise instead of silently repeating a frame it could not decode
READ_MODES = ("seek", "in_order", "pyav")  # how clips of a file are decoded: see `decode_frames`
IN_ORDER_CHUNK = 64  # frames per get_batch when a clip is decoded in order from frame 0
DECORD_NO_CUDA = ("decord has no CUDA in this build (decord: {said}), as PyPI's decord2 wheels have not; the "
                  "DataModules decode clips on the GPU with PyNvVideoCodec instead (decode_device: gpu; "
                  "pip install 'vqvideo[gpu]'; docs/gpu-decoding.md)")


class VideoReadError(RuntimeError):
    """A video that cannot be turned into the requested clip; the message names the file and the reason."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class GpuDecodeUnavailable(RuntimeError):
    """decode_device='gpu' cannot run here; the message is one line: why, what to install, what it needs."""


class FrameSize(NamedTuple):
    height: int
    width: int


class KnownSource(NamedTuple):
    """What the index knows of a video (`VideoEntry.source`): its upright size, so the header is not probed again,
    and how its clips must be decoded."""

    height: int
    width: int
    read_mode: str | None = None  # READ_MODES; None: decide from decord's timestamps (`seeks_exactly`)


# FFmpeg filters that turn decoded pictures upright, by PyAV's `VideoFrame.rotation` (the display matrix), as
# `ffmpeg -i` and decord both do (measured: decord's frames of a -90 file equal PyAV's after transpose=clock).
UPRIGHT_FILTERS = {-90: (("transpose", "clock"),), 270: (("transpose", "clock"),), 90: (("transpose", "cclock"),),
                   -270: (("transpose", "cclock"),), 180: (("hflip", ""), ("vflip", "")),
                   -180: (("hflip", ""), ("vflip", ""))}


def display_rotation(container, stream) -> int:
    """Degrees the first frame's display matrix turns it (0: none, or no frame decodes); seeks back to the start."""
    import av

    try:
        frame = next(container.decode(stream), None)
    except (av.FFmpegError, ValueError):
        frame = None
    container.seek(0, stream=stream) if frame is not None else None
    return int(round(frame.rotation)) if frame is not None and frame.rotation in UPRIGHT_FILTERS else 0


def displayed_size(stream, rotation: int) -> FrameSize:
    """The upright picture's size: the coded size, height and width swapped by a quarter turn."""
    height, width = stream.codec_context.height, stream.codec_context.width
    return FrameSize(width, height) if rotation % 180 else FrameSize(height, width)


def probe_frame_size(path: str) -> FrameSize:
    """Height and width of the first video stream as displayed (upright): header and first frame."""
    import av

    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            return displayed_size(stream, display_rotation(container, stream))
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


def decord_errors() -> tuple[type[Exception], ...]:
    """What decord raises: DECORDLimitReachedError (a repeated frame, see REPEAT_TOLERANCE) is no DECORDError;
    an unopenable file gives RuntimeError, a file without frames AssertionError."""
    import decord

    return decord.DECORDError, decord.DECORDLimitReachedError, RuntimeError, AssertionError


def decord_message(error: Exception) -> str:
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
    except decord_errors() as error:  # decord raises RuntimeError for unopenable files
        said = decord_message(error)
        if "CUDA not enabled" in said or "GPU acceleration not available" in said:
            raise GpuDecodeUnavailable(DECORD_NO_CUDA.format(said=said)) from None
        raise VideoReadError(path, f"decord cannot open it ({said})") from None


def seeks_exactly(reader) -> bool:
    """Whether decord's timestamps allow a seek: every frame has a distinct, increasing presentation time from 0 on.
    A first time below 0 is an edit list's hidden pre-roll (a stream-copy cut), which decord's seek counts."""
    stamps = reader.get_frame_timestamp(list(range(len(reader))))[:, 0]
    return bool(np.all(np.isfinite(stamps)) and stamps.min() >= 0 and np.all(np.diff(stamps) > 0))


def read_in_order(reader, frame_indices: list[int], chunk: int = IN_ORDER_CHUNK) -> np.ndarray:
    """Frames `frame_indices` of a fresh reader, decoded in order from frame 0 (no seek): (T, H, W, 3) uint8."""
    wanted, found = set(frame_indices), {}
    last = max(frame_indices)
    for start in range(0, last + 1, chunk):
        block = reader.get_batch(list(range(start, min(last + 1, start + chunk)))).asnumpy()
        found.update({start + i: frame for i, frame in enumerate(block) if start + i in wanted})
    return np.stack([found[i] for i in frame_indices])


class _WidthCopyFailure(Exception):
    """decord cannot copy frames of some even output widths (8, 16, 24, 32, 48, 96, 144 ... px) out."""


def _decode(path: str, frame_indices: list[int], size: FrameSize, decode_device: str, device_id: int,
            read_mode: str | None) -> np.ndarray:
    if read_mode == "pyav":
        return pyav_read(path, frame_indices, size)
    reader = open_reader(path, size, decode_device, device_id)
    frames = None
    try:
        num_frames = len(reader)
        if max(frame_indices) < num_frames:
            seek = seeks_exactly(reader) if read_mode is None else read_mode == "seek"
            frames = reader.get_batch(frame_indices).asnumpy() if seek else read_in_order(reader, frame_indices)
    except decord_errors() as error:
        if "DECORDArrayCopyFromTo" in str(error):
            raise _WidthCopyFailure() from None
        raise VideoReadError(path, f"decoding failed ({decord_message(error)})") from None
    finally:
        del reader
    if frames is None:
        raise VideoReadError(path, f"too short: frame {max(frame_indices)} requested, {num_frames} frames")
    return frames


def decode_frames(path: str, frame_indices: list[int], size: FrameSize, decode_device: str = "cpu",
                  device_id: int = 0, read_mode: str | None = None) -> torch.Tensor:
    """Frames `frame_indices` of `path` decoded at `size`: (T, H, W, 3) uint8 on the CPU.

    read_mode: the index's `VideoEntry.read_mode` (READ_MODES, which the probe checked): "seek" lets decord seek,
    "in_order" decodes with decord from frame 0, "pyav" with PyAV from frame 0 (damaged files); None decides between
    the first two from decord's timestamps (`seeks_exactly`)."""
    try:
        return torch.from_numpy(_decode(path, frame_indices, size, decode_device, device_id, read_mode))
    except _WidthCopyFailure:
        wider = FrameSize(size.height, size.width + 1)  # odd widths always copy out
    try:
        frames = _decode(path, frame_indices, wider, decode_device, device_id, read_mode)
    except _WidthCopyFailure:
        raise VideoReadError(path, f"decord cannot output frames {wider.width} or {size.width} px wide") from None
    return resize_frames(torch.from_numpy(frames), size)


def pyav_frames(path: str, size: FrameSize, failures: list[int] | None = None) -> Iterator[np.ndarray]:
    """PyAV's presented frames, upright, at `size` as (H, W, 3) uint8, turned and scaled by the FFmpeg filters
    decord uses (bit-identical to decord's frames), one decoding thread. A packet that fails to decode is passed
    over, as ffmpeg does, and the number of frames presented before it appended to `failures`."""
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        graph, presented = None, 0
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except (av.FFmpegError, ValueError):
                failures.append(presented) if failures is not None else None
                continue
            presented += len(frames)
            for frame in frames:
                graph = graph or _upright_scaler(stream, int(round(frame.rotation)), size)
                graph.push(frame)
                yield graph.pull().to_ndarray()


def _upright_scaler(stream, rotation: int, size: FrameSize):
    import av

    graph = av.filter.Graph()
    upright = [graph.add(name, argument) for name, argument in UPRIGHT_FILTERS.get(rotation, ())]
    chain = [graph.add_buffer(template=stream), *upright, graph.add("scale", f"{size.width}:{size.height}"),
             graph.add("format", "rgb24"), graph.add("buffersink")]
    for upstream, downstream in zip(chain, chain[1:]):
        upstream.link_to(downstream)
    graph.configure()
    return graph


def pyav_read(path: str, frame_indices: list[int], size: FrameSize) -> np.ndarray:
    """Frames `frame_indices` decoded with PyAV in order from frame 0: (T, H, W, 3) uint8 (the "pyav" read mode)."""
    wanted, found = set(frame_indices), {}
    for index, frame in enumerate(pyav_frames(path, size)):
        if index in wanted:
            found[index] = frame
        if len(found) == len(wanted):
            break
    if len(found) < len(wanted):
        raise VideoReadError(path, f"too short: frame {max(frame_indices)} requested, PyAV presents fewer")
    return np.stack([found[i] for i in frame_indices])


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
                   device_id: int = 0, source_size: tuple[int, int] | None = None,
                   read_mode: str | None = None) -> torch.Tensor:
    """Frames `frame_indices` of `path` with the shorter side resized to `resolution` (aspect kept): what every
    clip is cut from. `source_size` (height, width) skips probing the header when the caller knows it; `read_mode`
    as in `decode_frames`.
    Returns: (T, H', W', 3) uint8 with min(H', W') == resolution (a decoder may round the longer side)."""
    size = FrameSize(*source_size) if source_size is not None else probe_frame_size(path)
    target = resized_size(size, resolution)
    frames = decode_frames(path, frame_indices, target, decode_device, device_id, read_mode)  # (T, H', W', 3)
    if min(frames.shape[1:3]) < resolution:  # a decoder that ignored the requested size
        frames = resize_frames(frames, target)
    return frames


def cut_clip(frames: torch.Tensor, resolution: int, crop: str = "center", flip: bool = False,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """frames (T, H', W', 3) uint8 from `resized_frames` -> a center or random `resolution`-square crop,
    optionally flipped left-right, as model input: (3, T, resolution, resolution) float32 in [-1, 1]."""
    offsets = crop_offsets(FrameSize(*frames.shape[1:3]), resolution, crop, generator)
    return crop_and_scale(frames, offsets, resolution, flip)


def crop_and_scale(frames: torch.Tensor, offsets: FrameSize, resolution: int, flip: bool = False) -> torch.Tensor:
    """frames (T, H', W', 3) uint8 (any device) -> the `resolution`-square at `offsets` (top, left), optionally
    flipped left-right: (3, T, resolution, resolution) float32 in [-1, 1] on the frames' device."""
    top, left = offsets
    frames = frames[:, top:top + resolution, left:left + resolution]  # (T, res, res, 3)
    if flip:
        frames = frames.flip(2)
    video = frames.permute(3, 0, 1, 2).float()  # (3, T, res, res)
    return video.div_(127.5).sub_(1.0)


def read_clip(path: str, start_frame: int, num_frames: int, frame_stride: int = 1, resolution: int = 64,
              crop: str = "center", flip: bool = False, decode_device: str = "cpu",
              generator: torch.Generator | None = None, source: KnownSource | None = None) -> torch.Tensor:
    """Frames start_frame, start_frame + frame_stride, ... of `path` as model input.

    Shorter side resized to `resolution`, then a center or random `resolution`-square crop, optionally
    flipped left-right (`resized_frames`, then `cut_clip`). `source` (the index's `VideoEntry.source`: size and
    read mode) skips probing the header and decodes the way the probe checked.
    Returns: (3, T, H, W) float32 in [-1, 1] with T = num_frames, H = W = resolution.
    Raises VideoReadError (file + reason) or GpuDecodeUnavailable.
    """
    if start_frame < 0:
        raise ValueError(f"start_frame must be >= 0, got {start_frame}")
    frame_indices = [start_frame + i * frame_stride for i in range(num_frames)]
    size, read_mode = (None, None) if source is None else ((source.height, source.width), source.read_mode)
    frames = resized_frames(path, frame_indices, resolution, decode_device, source_size=size, read_mode=read_mode)
    return cut_clip(frames, resolution, crop, flip, generator)
