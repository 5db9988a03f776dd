"""GPU clip decoding (`decode_device: gpu`): NVDEC on the local rank's GPU, through decord when its build has CUDA,
else through NVIDIA's PyNvVideoCodec (`pip install 'vqvideo[gpu]'`; docs/gpu-decoding.md).

CUDA cannot be used in forked DataLoader workers, so with `decode_device: gpu` a worker only plans each clip
(`clip_request`: file, frame indices, the crop's corner and the flip, drawn exactly as the CPU path draws them) and
the clip is decoded in the training process once its batch is on the GPU (`decode_clip_batch`, called from the
DataModules' `on_after_batch_transfer`). Resize (shorter side, antialiased bilinear: `resize_frames`), crop, flip and
the uint8 -> [-1, 1] float scaling are the CPU path's functions, run on GPU tensors.

PyNvVideoCodec behaviour handled here (read from its 2.2.4 wheel's `SimpleDecoder.py` and `__init__.py`):
- `import PyNvVideoCodec` raises RuntimeError, not ImportError, when the driver's libnvidia-encode.so.1 cannot be
  loaded (no NVIDIA driver, or a container started without `video` in NVIDIA_DRIVER_CAPABILITIES).
- `get_batch_frames_by_index` drops repeated indices and skips out-of-range ones with only a warning: we ask for the
  sorted unique indices, check that as many frames came back, and map them back to the clip's order.
- `len(SimpleDecoder)` is the container's frame count unless the decoder scanned the stream; the index counted the
  frames that decode, so a clip needing frames past the container's count reopens the file with the scan.
- It does not resize: frames come at the source size, planar RGB (3, H, W) uint8 on the GPU, handed over by DLPack.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Protocol

import torch

from vqvideo.data.video import (FrameSize, GpuDecodeUnavailable, VideoReadError, crop_and_scale, crop_offsets,
                                decode_frames, open_reader, probe_frame_size, resize_frames, resized_frames,
                                resized_size)

GPU_NEEDS = ("it needs an NVIDIA GPU with NVDEC and its driver (in a container, NVIDIA_DRIVER_CAPABILITIES must "
             "include video) and PyNvVideoCodec: pip install 'vqvideo[gpu]'; or set decode_device: cpu")
REQUEST_KEYS = ("video_path", "frame_indices", "source_size", "frames_available", "crop_offset", "flip")


def unavailable(reason: str) -> GpuDecodeUnavailable:
    """The one-line error for a machine where decode_device='gpu' cannot run."""
    return GpuDecodeUnavailable(f"decode_device='gpu' is unavailable here: {reason}; {GPU_NEEDS}")


def import_nvcodec():
    """PyNvVideoCodec, or GpuDecodeUnavailable saying why not (not installed; the driver's video library missing)."""
    try:
        import PyNvVideoCodec
    except ImportError:
        raise unavailable("PyNvVideoCodec is not installed") from None
    except RuntimeError as error:  # its import loads libnvidia-encode.so.1 and raises RuntimeError without it
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise unavailable(f"PyNvVideoCodec cannot load the NVIDIA driver's video library ({first_line})") from None
    return PyNvVideoCodec


class FrameSource(Protocol):
    def resized(self, path: str, frame_indices: list[int], size: FrameSize,
                num_frames: int | None = None) -> torch.Tensor:
        """Frames `frame_indices` of `path` at `size`: (T, size.height, size.width, 3) uint8 on the source's device.
        num_frames: the frames that decode (the index's count), None if unknown."""


class DecordGpuFrames:
    """decord with CUDA (NVDEC), for the builds that have it (not PyPI's decord2 wheels); resizes in the decoder."""

    def __init__(self, device: torch.device):
        self.device = device

    def resized(self, path: str, frame_indices: list[int], size: FrameSize,
                num_frames: int | None = None) -> torch.Tensor:
        return decode_frames(path, frame_indices, size, "gpu", self.device.index or 0).to(self.device)


class NvCodecFrames:
    """PyNvVideoCodec's SimpleDecoder, one per clip; `open_decoder(path, scanned)` returns an object with its
    interface (`__len__`, `get_batch_frames_by_index`, frames that `torch.from_dlpack` takes)."""

    def __init__(self, device: torch.device, open_decoder: Callable[[str, bool], Any]):
        self.device, self.open_decoder = device, open_decoder

    def resized(self, path: str, frame_indices: list[int], size: FrameSize,
                num_frames: int | None = None) -> torch.Tensor:
        frames = self.native(path, frame_indices, num_frames)  # (T, H, W, 3) uint8
        return frames if tuple(frames.shape[1:3]) == tuple(size) else resize_frames(frames, size)

    def native(self, path: str, frame_indices: list[int], num_frames: int | None = None) -> torch.Tensor:
        """Frames `frame_indices` (any order, repeats allowed) at the source size: (T, H, W, 3) uint8."""
        unique = sorted(set(frame_indices))
        if unique[0] < 0 or (num_frames is not None and unique[-1] >= num_frames):
            raise VideoReadError(path, f"too short: frame {unique[-1]} requested, {num_frames} frames")
        decoder = self._open(path, scanned=False)
        if len(decoder) <= unique[-1]:  # the container's count may be short of what decodes: count by scanning
            decoder = self._open(path, scanned=True)
        with warnings.catch_warnings(record=True) as caught:  # it warns, not raises, on indices it skips
            warnings.simplefilter("always")
            try:
                got = decoder.get_batch_frames_by_index(unique)
            except Exception as error:  # noqa: BLE001 (its C++ layer raises plain RuntimeError/Exception)
                raise VideoReadError(path, f"PyNvVideoCodec failed to decode frames {unique} ({error})") from None
        if len(got) != len(unique):
            said = "; ".join(str(w.message) for w in caught[:2]) or "no warning"
            raise VideoReadError(path, f"PyNvVideoCodec returned {len(got)} of the {len(unique)} frames asked for "
                                       f"({unique[0]}..{unique[-1]}; it counts {len(decoder)} frames; {said})")
        planes = torch.stack([as_planes(path, torch.from_dlpack(frame)) for frame in got])  # (U, 3, H, W), a copy
        position = {index: row for row, index in enumerate(unique)}
        rows = torch.tensor([position[index] for index in frame_indices], device=planes.device)
        return planes.index_select(0, rows).permute(0, 2, 3, 1).to(self.device)  # (T, H, W, 3)

    def _open(self, path: str, scanned: bool):
        try:
            return self.open_decoder(path, scanned)
        except Exception as error:  # noqa: BLE001 (unopenable files raise plain Exception from its C++ layer)
            said = " ".join(str(error).split())[:200] or type(error).__name__
            raise VideoReadError(path, f"PyNvVideoCodec cannot open it ({said})") from None


def as_planes(path: str, frame: torch.Tensor) -> torch.Tensor:
    """One RGBP frame from DLPack, (3, H, W) or stacked planes (3H, W), uint8 -> (3, H, W) uint8."""
    if frame.dtype == torch.uint8 and frame.dim() == 3 and frame.shape[0] == 3:
        return frame
    if frame.dtype == torch.uint8 and frame.dim() == 2 and frame.shape[0] % 3 == 0:
        return frame.reshape(3, frame.shape[0] // 3, frame.shape[1])
    raise VideoReadError(path, f"PyNvVideoCodec gave a frame of shape {tuple(frame.shape)} {frame.dtype}, not RGBP "
                               "uint8 (3, H, W)")


def nvcodec_opener(device: torch.device) -> Callable[[str, bool], Any]:
    nvc = import_nvcodec()

    def open_decoder(path: str, scanned: bool):
        return nvc.SimpleDecoder(path, gpu_id=device.index or 0, use_device_memory=True,
                                 need_scanned_stream_metadata=scanned,
                                 output_color_type=nvc.OutputColorType.RGBP)
    return open_decoder


def decord_has_cuda(sample_path: str, device_id: int) -> bool:
    try:
        open_reader(sample_path, None, "gpu", device_id)  # dropped at once: only whether it opens matters
    except (GpuDecodeUnavailable, VideoReadError):
        return False
    return True


def open_frame_source(device_id: int, sample_path: str) -> FrameSource:
    """decord on the GPU when its build has CUDA, else PyNvVideoCodec; GpuDecodeUnavailable (one line) when neither
    can run. sample_path: a video to try decord's CUDA on."""
    if not torch.cuda.is_available():
        raise unavailable(f"this torch ({torch.__version__}) sees no CUDA GPU")
    device = torch.device("cuda", device_id)
    if decord_has_cuda(sample_path, device_id):
        return DecordGpuFrames(device)
    return NvCodecFrames(device, nvcodec_opener(device))


_SOURCES: dict[int, FrameSource] = {}  # per GPU, per process: which backend is decided once


def frame_source(device_id: int, sample_path: str) -> FrameSource:
    if device_id not in _SOURCES:
        _SOURCES[device_id] = open_frame_source(device_id, sample_path)
    return _SOURCES[device_id]


# ----- planning in the workers, decoding after the transfer --------------------------------------------------------
def clip_request(path: str, frame_indices: list[int], source_size: tuple[int, int] | None, num_frames: int | None,
                 resolution: int, crop: str, flip: bool, generator: torch.Generator | None = None) -> dict:
    """What a DataLoader worker hands over for one clip instead of its pixels (no CUDA there): the crop's corner is
    drawn as `cut_clip` draws it, on the size `resized_frames` delivers. Collated: video_path list[str];
    frame_indices (B, T), source_size (B, 2), frames_available (B,) (-1: unknown), crop_offset (B, 2) int64;
    flip (B,) bool."""
    size = FrameSize(*source_size) if source_size is not None else probe_frame_size(path)
    offsets = crop_offsets(resized_size(size, resolution), resolution, crop, generator)
    return {"video_path": path, "frame_indices": torch.tensor(frame_indices, dtype=torch.int64),
            "source_size": torch.tensor(tuple(size), dtype=torch.int64),
            "frames_available": num_frames if num_frames is not None else -1,
            "crop_offset": torch.tensor(tuple(offsets), dtype=torch.int64), "flip": flip}


def decode_clip(source: FrameSource, batch: dict, item: int, resolution: int) -> torch.Tensor:
    """Clip `item` of a collated batch of `clip_request`s: (3, T, resolution, resolution) float32 in [-1, 1]."""
    available = int(batch["frames_available"][item])
    size = resized_size(FrameSize(*batch["source_size"][item].tolist()), resolution)
    frames = source.resized(batch["video_path"][item], batch["frame_indices"][item].tolist(), size,
                            available if available >= 0 else None)  # (T, H', W', 3) uint8
    return crop_and_scale(frames, FrameSize(*batch["crop_offset"][item].tolist()), resolution,
                          bool(batch["flip"][item]))


def decode_on_cpu(batch: dict, item: int, resolution: int) -> torch.Tensor:
    """The same clip through the CPU decoder (for a file the GPU decoder cannot read)."""
    frames = resized_frames(batch["video_path"][item], batch["frame_indices"][item].tolist(), resolution,
                            source_size=tuple(batch["source_size"][item].tolist()))
    return crop_and_scale(frames, FrameSize(*batch["crop_offset"][item].tolist()), resolution,
                          bool(batch["flip"][item]))


def decode_clip_batch(source: FrameSource, batch: dict, resolution: int,
                      device: torch.device) -> tuple[torch.Tensor, list[str]]:
    """Every clip of a collated batch of `clip_request`s -> ((B, 3, T, res, res) float32 in [-1, 1] on `device`,
    read error per clip, "" if read). A file the GPU decoder cannot read is decoded on the CPU instead (one warning);
    a clip neither can read, or one whose request already carries a read_error, is zeros with its error."""
    clips, errors = [], []
    for item in range(len(batch["video_path"])):
        earlier = batch.get("read_error", [""] * (item + 1))[item]
        if earlier:
            clips.append(torch.zeros(3, len(batch["frame_indices"][item]), resolution, resolution, device=device))
            errors.append(earlier)
            continue
        try:
            clip = decode_clip(source, batch, item, resolution)
            errors.append("")
        except VideoReadError as gpu_error:
            clip, error = _cpu_fallback(batch, item, resolution, gpu_error)
            errors.append(error)
        clips.append(clip.to(device))
    return torch.stack(clips), errors


_WARNED: set[str] = set()


def _cpu_fallback(batch: dict, item: int, resolution: int, gpu_error: VideoReadError) -> tuple[torch.Tensor, str]:
    if gpu_error.path not in _WARNED:
        _WARNED.add(gpu_error.path)
        warnings.warn(f"GPU decoding failed for {gpu_error.path} ({gpu_error.reason}); its clips are decoded on the "
                      "CPU", stacklevel=3)
    try:
        return decode_on_cpu(batch, item, resolution), ""
    except VideoReadError as error:
        frames = len(batch["frame_indices"][item])
        return torch.zeros(3, frames, resolution, resolution), str(error)
