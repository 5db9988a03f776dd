"""A corpus of the defects real downloads have, written with PyAV from the bundled clips (no ffmpeg binary).

Each writer makes one file the way the defect happens: a stream-copy cut (`ffmpeg -ss S -i IN -t D -c copy`,
reproduced packet for packet: it keeps the packets from the keyframe before S and shifts timestamps so that
frame S is at 0, and the MP4 muxer writes an edit list hiding the pre-roll — checked against ffmpeg 5.1, which
gives the same header count and the same decoded frames), a damaged last packet, a download cut mid-file,
open GOPs with B-frames, variable frame rate, a rotation matrix, odd sizes, 10-bit and 4:4:4, audio only, and
an empty file. The index tests and `benchmarks/bench_data_defects.py` compare what the probe keeps of each with
what PyAV decodes.
"""

from __future__ import annotations

import functools
import itertools
import struct
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av
import numpy as np

from vqvideo.data.sources import embedded_clips

WIDTH, HEIGHT = 64, 48


def bikes_frames(num_frames: int, width: int = WIDTH, height: int = HEIGHT) -> list[av.VideoFrame]:
    """The first num_frames (<= 150) frames of the bundled bikes clip at width x height (rgb24 VideoFrames)."""
    return [av.VideoFrame.from_ndarray(array, format="rgb24").reformat(width=width, height=height)
            for array in _bikes_arrays()[:num_frames]]


@functools.lru_cache(maxsize=1)
def _bikes_arrays() -> tuple[np.ndarray, ...]:
    """The first 150 frames of bikes at 128 x 96, decoded once per process: (96, 128, 3) uint8 each."""
    with av.open(str(embedded_clips()[0])) as container:
        frames = (frame.to_ndarray(width=128, height=96, format="rgb24") for frame in container.decode(video=0))
        return tuple(itertools.islice(frames, 150))


def encode(path: Path, codec: str, num_frames: int = 60, options: dict | None = None, pix_fmt: str = "yuv420p",
           size: tuple[int, int] = (WIDTH, HEIGHT), frame_ticks: list[int] | None = None) -> Path:
    """num_frames of bikes encoded with `codec`; `frame_ticks` (ms per frame, cycled) makes the frame rate vary."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], pix_fmt
        stream.options = options or {}
        if frame_ticks:
            stream.codec_context.time_base = Fraction(1, 1000)
        pts = 0
        for number, frame in enumerate(bikes_frames(num_frames, *size)):
            frame = frame.reformat(format=pix_fmt)
            if frame_ticks:
                frame.pts, frame.time_base = pts, Fraction(1, 1000)
                pts += frame_ticks[number % len(frame_ticks)]
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def x264(path: Path, num_frames: int = 60, params: str = "keyint=250", pix_fmt: str = "yuv420p",
         faststart: bool = False) -> Path:
    encode(path, "libx264", num_frames, {"preset": "ultrafast", "x264-params": f"scenecut=0:{params}"}, pix_fmt)
    if faststart:  # moov before mdat, as web downloads are: a cut file keeps a header written for the whole
        remux(path, path, lambda index, data: data, {"movflags": "faststart"})
    return path


def remux(source: Path, target: Path, change: Callable[[int, bytes], bytes], options: dict | None = None) -> Path:
    """Copy source's video packets (decode order) into target, each packet's bytes passed through change(i, bytes)."""
    with av.open(str(source)) as reader:
        template = reader.streams.video[0]
        with av.open(str(target) + ".part.mp4", "w", options=options or {}) as writer:
            stream = writer.add_stream_from_template(template)
            for index, packet in enumerate(p for p in reader.demux(template) if p.size):
                copy = av.Packet(change(index, bytes(packet)))
                copy.pts, copy.dts, copy.time_base = packet.pts, packet.dts, packet.time_base
                copy.is_keyframe, copy.stream = packet.is_keyframe, stream
                writer.mux(copy)
    Path(str(target) + ".part.mp4").replace(target)
    return target


def stream_copy_cut(source: Path, target: Path, start: int, count: int) -> Path:
    """What `ffmpeg -ss START/fps -i SOURCE -t COUNT/fps -c copy TARGET.mp4` writes: the packets from the keyframe
    at or before frame `start`, timestamps shifted so frame `start` is at 0 (the pre-roll gets negative times, which
    the MP4 muxer hides with an edit list)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(source)) as reader, av.open(str(target), "w") as writer:
        template = reader.streams.video[0]
        stream = writer.add_stream_from_template(template)
        ticks = int(1 / (template.average_rate * template.time_base))  # per frame
        packets = [packet for packet in reader.demux(template) if packet.size]
        first = max(i for i, p in enumerate(packets) if p.is_keyframe and p.pts <= start * ticks)
        end = (start + count) * ticks
        for packet in packets[first:]:
            if packet.pts >= end and packet.dts >= end:
                break
            packet.pts, packet.dts, packet.stream = packet.pts - start * ticks, packet.dts - start * ticks, stream
            writer.mux(packet)
    return target


def damaged_tail(path: Path, num_frames: int = 60) -> Path:
    """H.264 with B-frames whose last packet lost all but 8 bytes (a download whose last bytes went wrong)."""
    clean = x264(path.with_name(f"clean-{path.name}"), num_frames, "keyint=25:bframes=3:b-adapt=0")
    remux(clean, path, lambda index, data: data[:8] if index == num_frames - 1 else data)
    clean.unlink()
    return path


def damaged_packet(path: Path, num_frames: int = 60, packet: int = 45) -> Path:
    """H.264 (keyframe every 20) whose packet `packet` lost its second half: decoding it fails mid-file."""
    clean = x264(path.with_name(f"clean-{path.name}"), num_frames, "keyint=20:min-keyint=20")
    remux(clean, path, lambda index, data: data[: len(data) // 2] if index == packet else data)
    clean.unlink()
    return path


def truncated_download(path: Path, num_frames: int = 120, keep: int = 60) -> Path:
    """An MP4 written whole (moov first) and cut halfway into packet keep + 1: the header promises all frames."""
    x264(path, num_frames, "keyint=12:min-keyint=12", faststart=True)
    with av.open(str(path)) as container:
        ends = sorted(p.pos + p.size for p in container.demux(video=0) if p.size)
    data = path.read_bytes()
    path.write_bytes(data[:(ends[keep - 1] + ends[keep]) // 2])
    return path


def rotated(path: Path, num_frames: int = 40) -> Path:
    """H.264 whose track header carries a 90-degree display matrix (a phone video): players rotate, decoders don't."""
    data = bytearray(x264(path, num_frames).read_bytes())
    matrix = data.index(b"tkhd") + 4 + 4 + 36  # version/flags, 5 x 4-byte fields, reserved 8, 4 x 2-byte fields
    struct.pack_into(">9i", data, matrix, 0, 0x10000, 0, -0x10000, 0, 0, HEIGHT << 16, 0, 0x40000000)
    path.write_bytes(bytes(data))
    return path


def audio_only(path: Path, seconds: float = 1.0) -> Path:
    """An .mp4 with one AAC audio stream and no video (a soundtrack saved under a video name)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=44100)
        samples = int(44100 * seconds)
        wave = (0.2 * np.sin(np.arange(samples) * 2 * np.pi * 440 / 44100)).astype(np.float32)[None]
        for start in range(0, samples, 1024):
            frame = av.AudioFrame.from_ndarray(wave[:, start:start + 1024], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 44100, start
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def zero_length(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def gop_source(path: Path) -> Path:
    """The source the stream-copy cuts are cut from: 150 frames of bikes at 64 x 48, H.264 with B-frames and a
    keyframe every 30 frames. (The same cuts of the bundled 640 x 272 clip, made with ffmpeg 5.1, behave alike.)"""
    if not path.is_file():
        x264(path, 150, "keyint=30:min-keyint=30:bframes=3:b-adapt=0")
    return path


DEFECTS: dict[str, Callable[[Path], Path]] = {
    "stream_copy_cut_50.mp4": lambda path: stream_copy_cut(gop_source(path.parent / ".sources" / "gop30.mp4"), path, 50, 90),
    "stream_copy_cut_100.mp4": lambda path: stream_copy_cut(gop_source(path.parent / ".sources" / "gop30.mp4"), path, 100, 40),
    "stream_copy_cut_25.mp4": lambda path: stream_copy_cut(gop_source(path.parent / ".sources" / "gop30.mp4"), path, 25, 40),
    "damaged_tail.mp4": damaged_tail,
    "damaged_packet.mp4": damaged_packet,
    "truncated_download.mp4": truncated_download,
    "open_gop_bframes_h264.mp4": lambda path: x264(path, 60, "keyint=20:min-keyint=20:open-gop=1:bframes=3"),
    "open_gop_h265.mp4": lambda path: encode(path, "libx265", 60, {"preset": "ultrafast", "x265-params": (
        "keyint=20:min-keyint=20:scenecut=0:open-gop=1:bframes=3:log-level=error")}),
    "variable_frame_rate.mp4": lambda path: encode(path, "libx264", 60, {"preset": "ultrafast"},
                                                   frame_ticks=[40, 40, 80, 20, 60]),
    "rotation_90.mp4": rotated,
    "odd_size_65x49.webm": lambda path: encode(path, "libvpx-vp9", 40, {"deadline": "realtime", "cpu-used": "8"},
                                               size=(65, 49)),
    "ten_bit.mp4": lambda path: x264(path, 40, pix_fmt="yuv420p10le"),
    "yuv444.mp4": lambda path: x264(path, 40, pix_fmt="yuv444p"),
    "audio_only.mp4": audio_only,
    "zero_length.mp4": zero_length,
}


def write_corpus(folder: Path) -> dict[str, Path]:
    """Every file of DEFECTS written into `folder`: name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    return {name: write(folder / name) for name, write in DEFECTS.items()}
