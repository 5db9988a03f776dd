"""Clip loading speed: the DataModule's dataset (decord2, resize inside the decoder) vs a plain PyAV reader
(and decord at full size + torch resize), on the same random 16-frame clips, at 64 and 256 px; and the index
probe's cost per file (it decodes every frame once with decord).

One process, one decoding thread each (`torch.set_num_threads(1)`), no DataLoader workers: this measures
the cost of one clip, which DataLoader workers then multiply. Prints a table, then one JSON line.
Usage: python benchmarks/bench_data.py [--root DIR] [--clips 24] [--resolutions 64 256]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time

import av
import torch

from vqvideo.data.dataset import ClipDataset, ClipSpec
from vqvideo.data.datamodule import KineticsDataModule
from vqvideo.data.index import probe_video
from vqvideo.data.video import FrameSize, crop_offsets, decode_frames, decoder_version, read_clip, resize_frames
from vqvideo.data.windows import ClipWindow


def pyav_clip(path: str, start_frame: int, num_frames: int, resolution: int) -> torch.Tensor:
    """A plain PyAV reader: seek to the keyframe before the clip, decode up to it, resize shorter side
    (torch, antialiased), center crop. Returns (3, T, res, res) float32 in [-1, 1]."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        frame_duration = 1 / (stream.average_rate * stream.time_base)
        container.seek(int(start_frame * frame_duration) + (stream.start_time or 0), stream=stream, backward=True)
        frames = []
        for frame in container.decode(stream):
            index = round((frame.pts - (stream.start_time or 0)) / frame_duration)
            if index >= start_frame:
                frames.append(torch.from_numpy(frame.to_ndarray(format="rgb24")))
            if len(frames) == num_frames:
                break
    return crop_and_scale(torch.stack(frames), resolution)


def crop_and_scale(frames: torch.Tensor, resolution: int) -> torch.Tensor:
    """frames (T, H, W, 3) uint8 -> shorter side resized, center crop: (3, T, res, res) float32 in [-1, 1]."""
    height, width = frames.shape[1:3]
    scale = resolution / min(height, width)
    size = FrameSize(max(resolution, round(height * scale)), max(resolution, round(width * scale)))
    frames = resize_frames(frames, size)
    top, left = crop_offsets(size, resolution, "center", None)
    frames = frames[:, top:top + resolution, left:left + resolution]
    return frames.permute(3, 0, 1, 2).float().div_(127.5).sub_(1.0)


def decord_full_size_clip(entry, start_frame: int, num_frames: int, resolution: int) -> torch.Tensor:
    """decord at the source size, then the same torch resize + crop as the PyAV reader."""
    indices = list(range(start_frame, start_frame + num_frames))
    frames = decode_frames(entry.path, indices, FrameSize(entry.height, entry.width))
    return crop_and_scale(frames, resolution)


def clips_per_second(load, clips: list) -> float:
    load(clips[0])  # warm the file cache and lazy imports
    began = time.perf_counter()
    for clip in clips:
        video = load(clip)
        assert video.shape[-1] == video.shape[-2]
    return len(clips) / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=None, help="video root (default: the embedded clips)")
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--num_frames", type=int, default=16)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    dm = KineticsDataModule(root=args.root, num_frames=args.num_frames, num_workers=0, progress=False)
    dm.prepare_data()
    dm.setup("fit")
    entries = dm.split_entries("train")
    rng = random.Random(args.seed)
    picks = [rng.choice(entries) for _ in range(args.clips)]
    clips = [(dm.index.entries.index(e), rng.randrange(e.num_frames - args.num_frames + 1)) for e in picks]
    label_ids = [-1] * len(dm.index.entries)
    rows = []
    for resolution in args.resolutions:
        windows = [ClipWindow(v, s, 1, range(s, s + 1)) for v, s in clips]
        dataset = ClipDataset(dm.index.entries, label_ids, windows, ClipSpec(args.num_frames, resolution, train=True))
        order = iter(range(10**9))
        readers = {
            "datamodule dataset (decord, resize in decoder)": lambda clip: dataset[next(order) % len(dataset)]["video"],
            "plain PyAV + torch resize": lambda clip: pyav_clip(dm.index.entries[clip[0]].path, clip[1],
                                                               args.num_frames, resolution),
            "decord full size + torch resize": lambda clip: decord_full_size_clip(dm.index.entries[clip[0]], clip[1],
                                                                               args.num_frames, resolution),
        }
        for name, load in readers.items():
            rows.append({"resolution": resolution, "reader": name, "clips_per_s": clips_per_second(load, clips)})
    agreement = mean_abs_difference(dm, clips[0], args.num_frames, args.resolutions[0])
    probes = probe_seconds(entries)
    print_table(rows, args, dm)
    print(f"same frames? mean |datamodule - PyAV| on clip 0, center crop: {agreement:.4f} (of a [-1, 1] range)")
    for name, (seconds, frames) in probes.items():
        print(f"index probe of {name}: {1000 * seconds:.0f} ms ({frames} frames, "
              f"{1e6 * seconds / frames:.0f} us/frame)")
    print(json.dumps({"bench": "data", "decoder": decoder_version(), "num_frames": args.num_frames,
                      "clips": args.clips, "mean_abs_difference_vs_pyav": round(agreement, 4),
                      "probe_ms": {name: round(1000 * seconds, 1) for name, (seconds, _) in probes.items()},
                      "source": args.root or "embedded", "machine": platform.processor() or platform.machine(),
                      "results": [{**row, "clips_per_s": round(row["clips_per_s"], 2)} for row in rows]}))


def probe_seconds(entries) -> dict[str, tuple[float, int]]:
    """Seconds `probe_video` takes per file (best of 2) and its frame count, by file name."""
    found = {}
    for entry in entries:
        timings = []
        for _ in range(2):
            began = time.perf_counter()
            probe_video(entry.path)
            timings.append(time.perf_counter() - began)
        found[entry.rel_path] = (min(timings), entry.num_frames)
    return found


def mean_abs_difference(dm, clip: tuple[int, int], num_frames: int, resolution: int) -> float:
    """How far the DataModule's clip is from the PyAV reader's (same frames; only resize filters differ)."""
    entry = dm.index.entries[clip[0]]
    ours = read_clip(entry.path, clip[1], num_frames, resolution=resolution, crop="center")
    return float((ours - pyav_clip(entry.path, clip[1], num_frames, resolution)).abs().mean())


def print_table(rows: list[dict], args, dm) -> None:
    sizes = sorted({(e.width, e.height) for e in dm.split_entries("train")})
    print(f"{args.clips} random {args.num_frames}-frame clips from {args.root or 'the embedded clips'} "
          f"(sources {sizes}), {decoder_version()}, 1 thread, no workers")
    print(f"{'px':>4}  {'reader':48s} {'clips/s':>8} {'ms/clip':>8} {'vs PyAV':>8}")
    for row in rows:
        baseline = next(r["clips_per_s"] for r in rows
                        if r["resolution"] == row["resolution"] and r["reader"].startswith("plain PyAV"))
        print(f"{row['resolution']:>4}  {row['reader']:48s} {row['clips_per_s']:8.2f} "
              f"{1000 / row['clips_per_s']:8.1f} {row['clips_per_s'] / baseline:7.2f}x")


if __name__ == "__main__":
    main()
