"""What the index keeps of each defect real downloads have, next to what PyAV decodes, and the probe's speed on them.

Writes `vqvideo.data.defect_corpus` into a temporary folder, probes every file (`probe_video`, timed), and for each
readable one reads kept frames the way clips read them (`decode_frames` with the file's read mode) at the source size
and compares them with PyAV's decode of the same frames: mean |difference| (of 255) at the same index, and whether
the same index is the nearest of the 5 PyAV frames around it ("aligned"). For the damaged files it also decodes the
file in order with decord RUNS times and reports the longest prefix that decoded (decord's read-ahead makes it vary).
Prints a Markdown table (docs/data-defects.md), then one JSON line.
Usage: python benchmarks/bench_data_defects.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from vqvideo.data.defect_corpus import write_corpus
from vqvideo.data.index import probe_video
from vqvideo.data.scan import scan_size
from vqvideo.data.video import FrameSize, decode_frames, decoder_version, open_reader, pyav_frames

CLIP = 16


def pyav_reference(path: Path, size: FrameSize) -> tuple[list[np.ndarray], int | None]:
    """PyAV's frames of `path` upright at `size`, and the frames it presented before its first failed packet."""
    failures: list[int] = []
    frames = list(pyav_frames(str(path), size, failures))
    return frames, failures[0] if failures else None


def alignment(path: Path, probe, reference: list[np.ndarray]) -> tuple[float, bool]:
    """Worst mean |kept - PyAV| over 4 clips (first, middle, last) and whether every frame is nearest its own index."""
    worst, aligned, last = 0.0, True, probe.num_frames - 1
    for start in sorted({0, last // 3, last // 2 + 1, max(0, last - CLIP + 1)}):
        indices = list(range(start, min(start + CLIP, probe.num_frames)))
        size = FrameSize(probe.height, probe.width)
        frames = decode_frames(str(path), indices, size, read_mode=probe.read_mode).numpy().astype(np.int16)
        for index, frame in zip(indices, frames):
            nearby = range(max(0, index - 2), min(len(reference), index + 3))
            distance = {other: float(np.abs(frame - reference[other]).mean()) for other in nearby}
            worst, aligned = max(worst, distance[index]), aligned and min(distance, key=distance.get) == index
    return worst, aligned


def decord_prefixes(path: Path, size: FrameSize, runs: int) -> list[int]:
    """The longest prefix decord decodes in one batch from frame 0 (bisection), in each of `runs` runs."""
    found = []
    for _ in range(runs):
        good, bad = 0, len(open_reader(str(path), size)) + 1
        while bad - good > 1:
            middle = (good + bad) // 2
            try:
                open_reader(str(path), size).get_batch(list(range(middle))).asnumpy()
                good = middle
            except Exception:  # noqa: BLE001 (decord raises several unrelated types)
                bad = middle
        found.append(good)
    return found


def measure(path: Path, runs: int) -> dict:
    began = time.perf_counter()
    probe = probe_video(str(path))
    row = {"file": path.name, "probe_s": time.perf_counter() - began, "kept": probe.num_frames,
           "header": probe.header_frames, "readable": probe.readable, "reason": probe.reason,
           "read_mode": probe.read_mode if probe.readable else "-"}
    if not probe.readable:
        return {**row, "pyav": 0, "pyav_before_failure": None, "mean_abs": None, "aligned": None}
    native = FrameSize(probe.height, probe.width)
    reference, first_failure = pyav_reference(path, native)
    worst, aligned = alignment(path, probe, reference)
    row.update(pyav=len(reference), pyav_before_failure=first_failure, mean_abs=worst, aligned=aligned)
    if first_failure is not None:
        row["decord_prefixes"] = decord_prefixes(path, scan_size(native), runs)
    return row


def print_table(rows: list[dict]) -> None:
    print("| file | header | PyAV decodes | PyAV before its first error | kept | lost | read mode | "
          "max mean abs diff vs PyAV (same index) | aligned | decord in-order prefix over runs | probe s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        if not row["readable"]:
            print(f"| {row['file']} | {row['header']} | 0 | - | skipped: {row['reason'][:60]} | - | - | - | - | - | "
                  f"{row['probe_s']:.2f} |")
            continue
        before = "-" if row["pyav_before_failure"] is None else row["pyav_before_failure"]
        prefixes = row.get("decord_prefixes")
        spread = f"{min(prefixes)}..{max(prefixes)}" if prefixes else "-"
        print(f"| {row['file']} | {row['header']} | {row['pyav']} | {before} | {row['kept']} | "
              f"{row['pyav'] - row['kept']} | {row['read_mode']} | {row['mean_abs']:.2f} | {row['aligned']} | "
              f"{spread} | {row['probe_s']:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="decord in-order decodes per damaged file")
    args = parser.parse_args()
    av.logging.set_level(av.logging.PANIC)
    with tempfile.TemporaryDirectory() as folder:
        began = time.perf_counter()
        files = write_corpus(Path(folder))
        written = time.perf_counter() - began
        rows = [measure(path, args.runs) for path in files.values()]
    probe_seconds = sum(row["probe_s"] for row in rows)
    print_table(rows)
    print(f"probe: {len(rows)} files in {probe_seconds:.2f} s = {len(rows) / probe_seconds:.1f} files/s "
          f"({decoder_version()}, PyAV {av.__version__}, one process); corpus written in {written:.1f} s")
    print(json.dumps({"bench": "data_defects", "decoder": decoder_version(), "pyav": av.__version__,
                      "machine": platform.processor() or platform.machine(),
                      "probe_files_per_s": round(len(rows) / probe_seconds, 2),
                      "rows": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}
                               for row in rows]}))


if __name__ == "__main__":
    main()
