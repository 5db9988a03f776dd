"""Small real videos for the data tests: short pieces of the bundled clips, re-encoded small with PyAV."""

from __future__ import annotations

import csv
from pathlib import Path

import av
import numpy as np

from vqvideo.data.sources import embedded_clips


def read_frames(source: Path, start: int, num_frames: int) -> list[np.ndarray]:
    """Frames start .. start + num_frames - 1 of `source` as (H, W, 3) uint8 arrays."""
    frames = []
    with av.open(str(source)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index >= start + num_frames:
                break
            if index >= start:
                frames.append(frame.to_ndarray(format="rgb24"))
    return frames


def write_video(path: Path, frames: list[np.ndarray], width: int = 64, height: int = 48, fps: int = 25,
                faststart: bool = False) -> Path:
    """Encode frames (resized to width x height) as H.264 (mpeg4 if libx264 is missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "ultrafast"}
        for array in frames:
            frame = av.VideoFrame.from_ndarray(array, format="rgb24").reformat(width=width, height=height)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def source_frames(num_frames: int, which: int = 0, start: int = 0) -> list[np.ndarray]:
    """Frames of one of the bundled clips (0 bikes, 1 bigbuckbunny, 2 carphone)."""
    return read_frames(embedded_clips()[which], start, num_frames)


def make_kinetics_tree(root: Path, frames_per_video: int = 24) -> dict:
    """A Kinetics-600-layout tree with good and bad files mixed in; returns what a reader should find.

    Good: a per-class-folder video, flat videos labelled by the CSV (one id with '_' in it), one without a
    CSV row, one test video. Bad: an empty file, a text file named .mp4, a 4-frame video, one truncated to its
    first 3 frames (a truncated file that still holds a clip is kept: see test_data_defects.py).
    """
    carphone = source_frames(frames_per_video, which=2)
    bikes = source_frames(frames_per_video, which=0)
    good = {
        "train/abseiling/AAAAAAAAAAA_000010_000020.mp4": ("abseiling", "train"),
        "train/bb_b-bbbbbbb_000000_000010.mp4": ("juggling balls", "train"),
        "val/CCCCCCCCCCC_000005_000015.mp4": ("abseiling", "val"),
        "val/DDDDDDDDDDD_000000_000010.mp4": (None, "val"),
        "test/EEEEEEEEEEE_000000_000010.mp4": (None, "test"),
    }
    for number, rel_path in enumerate(good):
        write_video(root / rel_path, carphone if number % 2 else bikes)
    (root / "train" / "empty_000000_000010.mp4").write_bytes(b"")
    (root / "train" / "notes_000000_000010.mp4").write_text("not a video, just text\n" * 20)
    write_video(root / "train" / "short_000000_000010.mp4", carphone[:4])
    whole = write_video(root / "whole.mp4", carphone, faststart=True).read_bytes()
    (root / "whole.mp4").unlink()
    (root / "train" / "truncated_000000_000010.mp4").write_bytes(whole[: len(whole) // 3])
    (root / "train" / "README.txt").write_text("ignored: not a video extension")
    annotations = root / "annotations"
    annotations.mkdir()
    rows = [("abseiling", "AAAAAAAAAAA", 10, 20, "train"), ("juggling balls", "bb_b-bbbbbbb", 0, 10, "train"),
            ("abseiling", "CCCCCCCCCCC", 5, 15, "validate")]
    with open(annotations / "train.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
        writer.writerows(rows)
    bad = {"train/empty_000000_000010.mp4": "empty", "train/notes_000000_000010.mp4": "not a readable video",
           "train/short_000000_000010.mp4": "too short",
           "train/truncated_000000_000010.mp4": "too short: 3 frames decode (its header promises 24)"}
    return {"good": good, "bad": bad}
