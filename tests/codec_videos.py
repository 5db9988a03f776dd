"""Tiny videos for the decoding tests, written here with PyAV: each codec, and files damaged in known ways.

Frames are real (the bundled bikes clip, 64 x 48). The damage is made the way it happens: a header written
for a longer file, a download cut mid-file, flipped bytes inside H.264 slices, an open GOP.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import av
import numpy as np

from data_videos import source_frames

WIDTH, HEIGHT = 64, 48
CODECS = {  # name: (encoder, file name, encoder options)
    "h264": ("libx264", "h264.mp4", {"preset": "ultrafast"}),
    "h265": ("libx265", "h265.mp4", {"preset": "ultrafast", "x265-params": "log-level=error"}),
    "vp9": ("libvpx-vp9", "vp9.webm", {"deadline": "realtime", "cpu-used": "8"}),
    "av1": ("libsvtav1", "av1.mp4", {"preset": "12"}),
}
os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its whole configuration to stderr otherwise


def bikes(num_frames: int) -> list[np.ndarray]:
    """num_frames real frames (bikes, repeated if needed), each (H, W, 3) uint8."""
    frames = source_frames(min(num_frames, 60), which=0)
    return [frames[i % len(frames)] for i in range(num_frames)]


def encode(path: Path, encoder: str, num_frames: int = 40, options: dict | None = None,
           container_options: dict | None = None) -> Path:
    """num_frames of bikes at 64 x 48, 25 fps, with `encoder` (a PyAV codec name)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", options=container_options or {}) as container:
        stream = container.add_stream(encoder, rate=25)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = options or {}
        for array in bikes(num_frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24").reformat(width=WIDTH, height=HEIGHT)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def h264(path: Path, num_frames: int = 40, keyint: int = 250, extra: str = "", faststart: bool = False) -> Path:
    """H.264 with a keyframe every `keyint` frames; `extra` are more x264 parameters (a:b:...)."""
    params = f"keyint={keyint}:min-keyint={keyint}:scenecut=0" + (f":{extra}" if extra else "")
    return encode(path, "libx264", num_frames, {"preset": "ultrafast", "x264-params": params},
                  {"movflags": "faststart"} if faststart else None)


def pyav_frames(path: Path) -> list[np.ndarray]:
    """Every frame PyAV decodes, in order, as (H, W, 3) uint8: the reference decoded frames are checked against."""
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def overstating_avi(path: Path, num_frames: int = 40, header_frames: int = 160) -> Path:
    """A real AVI whose header (avih dwTotalFrames, strh dwLength) promises header_frames; all frames decode."""
    data = bytearray(h264(path, num_frames).read_bytes())
    avih, strh = data.index(b"avih") + 8, data.index(b"strh") + 8
    struct.pack_into("<I", data, avih + 16, header_frames)  # MainAVIHeader.dwTotalFrames
    struct.pack_into("<I", data, strh + 32, header_frames)  # AVIStreamHeader.dwLength
    path.write_bytes(bytes(data))
    return path


def packet_ends(path: Path) -> list[int]:
    """Byte offset just past each video packet of `path`, in file order."""
    with av.open(str(path)) as container:
        return sorted(packet.pos + packet.size for packet in container.demux(video=0) if packet.size)


def cut_mp4(path: Path, num_frames: int, keep: int, mid_packet: bool) -> Path:
    """An MP4 written whole (moov first) then cut: after `keep` packets, or halfway into packet keep + 1."""
    h264(path, num_frames, keyint=12, faststart=True)
    data, ends = path.read_bytes(), packet_ends(path)
    cut = (ends[keep - 1] + ends[keep]) // 2 if mid_packet else ends[keep - 1]
    path.write_bytes(data[:cut])
    return path


def _nal_payloads(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each NAL unit of an H.264 packet: Annex B (as in AVI) or 4-byte lengths (as in MP4)."""
    if not data.startswith((b"\0\0\1", b"\0\0\0\1")):
        spans, position = [], 0
        while position + 4 <= len(data):
            size = int.from_bytes(data[position:position + 4], "big")
            spans.append((position + 4, min(len(data), position + 4 + size)))
            position += 4 + size
        return spans
    starts, position = [], data.find(b"\0\0\1")
    while position >= 0:
        starts.append(position + 3)
        position = data.find(b"\0\0\1", position + 3)
    return [(start, (starts[i + 1] - 3) if i + 1 < len(starts) else len(data)) for i, start in enumerate(starts)]


def remux(source: Path, target: Path, change) -> Path:
    """Copy source's video packets into target, each packet's bytes passed through change(index, bytes)."""
    with av.open(str(source)) as reader, av.open(str(target), "w") as writer:
        input_stream = reader.streams.video[0]
        output_stream = writer.add_stream_from_template(input_stream)
        for index, packet in enumerate(reader.demux(input_stream)):
            if packet.dts is None:
                continue
            copy = av.Packet(change(index, bytes(packet)))
            copy.pts, copy.dts, copy.time_base = packet.pts, packet.dts, packet.time_base
            copy.is_keyframe, copy.stream = packet.is_keyframe, output_stream
            writer.mux(copy)
    return target


def corrupt_slices(path: Path, num_frames: int = 60, packets: tuple[int, ...] = (5, 12, 33, 41)) -> Path:
    """H.264 (AVI or MP4, by path), 4 slices per frame, bytes flipped inside the slices of `packets` (not frame 0).

    The decoder conceals the damage; with several decoding threads the concealed pixels differ run to run.
    """
    clean = h264(path.with_name(f"clean-{path.name}"), num_frames, keyint=30, extra="slices=4")
    rng = np.random.default_rng(0)

    def flip_slice_bytes(index: int, data: bytes) -> bytes:
        if index not in packets:
            return data
        damaged = bytearray(data)
        for start, end in _nal_payloads(data):
            if end - start > 12 and damaged[start] & 0x1F in (1, 5):  # coded slice NAL units
                for position in rng.integers(start + 4, end, size=max(1, (end - start) // 8)):
                    damaged[position] ^= 0xFF
        return bytes(damaged)

    remux(clean, path, flip_slice_bytes)
    clean.unlink()
    return path


def cut_packet_mp4(path: Path, num_frames: int = 60, packet: int = 45) -> Path:
    """H.264 MP4 (keyframe every 20) whose packet `packet` lost its second half: decoding it fails."""
    clean = h264(path.with_name(f"clean-{path.name}"), num_frames, keyint=20)
    remux(clean, path, lambda index, data: data[: len(data) // 2] if index == packet else data)
    clean.unlink()
    return path


def open_gop_h265(path: Path, num_frames: int = 60) -> Path:
    """H.265 with open GOPs (x265's default): pictures after a keyframe in decoding lead it on screen."""
    params = "keyint=20:min-keyint=20:scenecut=0:open-gop=1:bframes=3:log-level=error"
    return encode(path, "libx265", num_frames, {"preset": "ultrafast", "x265-params": params})
