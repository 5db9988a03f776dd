"""GPU vs CPU clip decoding through the DataModule: the `decode` part of `make gpu-check` (needs a CUDA GPU).

    python benchmarks/bench_gpu_decode.py [--device cuda] [--clips 64]

On the bundled clips (bikes 640×272, bigbuckbunny 1280×720, carphone 176×144; 16-frame training clips, random crop
and flip), at 64 and 256 px:
  clips/s   training batches delivered on the device: decode_device cpu with one DataLoader worker per CPU core
            (what the CPU can give at best), vs decode_device gpu (workers plan, the clips are decoded on the GPU in
            `on_after_batch_transfer`). The first batch (worker start, decoder set-up) is not timed.
  pixels    the validation clips (center crop, no flip) decoded both ways: max and mean absolute difference in uint8
            levels; with PyNvVideoCodec also at the source size (decoder and colour conversion alone, no resize).
  repeat    the GPU path decodes the validation clips twice: the same bytes both times.
Prints one JSON object (the report) as the last stdout line. GpuDecodeUnavailable (one line) where it cannot run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Iterator

import torch
from pytorch_lightning.utilities import move_data_to_device
from torch.utils.data import default_collate

from vqvideo.data.datamodule import KineticsDataModule
from vqvideo.data.gpu_decode import NvCodecFrames, frame_source
from vqvideo.data.sources import embedded_clips
from vqvideo.data.video import GpuDecodeUnavailable, decode_frames, probe_frame_size

RESOLUTIONS = (64, 256)
CLIP_STEP = 2  # window starts 2 frames apart: ~190 training clips, so every CPU worker has batches to decode
BATCH_SIZE = 4
PLANNING_WORKERS = 2  # decode_device gpu: workers only draw indices and crops


def datamodule(decode_device: str, resolution: int, num_workers: int, cache_dir: str,
               device: torch.device) -> KineticsDataModule:
    dm = KineticsDataModule(decode_device=decode_device, resolution=resolution, batch_size=BATCH_SIZE,
                            num_workers=num_workers, clip_step=CLIP_STEP, random_flip=True,
                            index_cache_dir=cache_dir, progress=False)
    if decode_device == "gpu":  # on `device` (setup() alone would pick the local rank's GPU)
        dm.gpu_frames = frame_source(device.index or 0, str(embedded_clips()[0]))
    dm.setup("fit")
    return dm


def delivered(dm: KineticsDataModule, batch: dict, device: torch.device) -> torch.Tensor:
    """A loader batch as training receives it: moved to the device, then the DataModule's after-transfer hook."""
    return dm.on_after_batch_transfer(move_data_to_device(batch, device), 0)["video"]  # (B, 3, T, H, W)


def epochs(loader) -> Iterator[dict]:
    while True:
        yield from loader


def clips_per_second(dm: KineticsDataModule, device: torch.device, num_clips: int) -> float:
    batches = epochs(dm.train_dataloader())
    delivered(dm, next(batches), device)  # warm-up: workers start, decoders open
    torch.cuda.synchronize(device)
    start, count = time.perf_counter(), 0
    while count < num_clips:
        count += delivered(dm, next(batches), device).shape[0]
    torch.cuda.synchronize(device)
    return count / (time.perf_counter() - start)


def validation_videos(dm: KineticsDataModule, device: torch.device) -> torch.Tensor:
    """Every validation clip (center crop, no flip) as uint8 levels: (N, 3, T, H, W) int32."""
    dataset = dm.dataset("val")
    video = delivered(dm, default_collate([dataset[i] for i in range(len(dataset))]), device)
    return video.add(1.0).mul(127.5).round().int()


def native_difference(source: NvCodecFrames, dm: KineticsDataModule) -> tuple[int, float]:
    """PyNvVideoCodec's frames vs decord's at the source size, over the validation clips' frames."""
    differences = []
    for window in dm.split_windows("val"):
        entry = dm.index.entries[window.video_index]
        indices = [window.start_frame + i * window.frame_stride for i in range(dm.hparams.num_frames)]
        on_gpu = source.native(entry.path, indices, entry.num_frames).cpu().int()
        on_cpu = decode_frames(entry.path, indices, probe_frame_size(entry.path)).int()
        differences.append((on_gpu - on_cpu).abs())
    levels = torch.cat([d.flatten() for d in differences]).float()
    return int(levels.max()), float(levels.mean())


def measure(device: torch.device, num_clips: int = 64) -> dict:
    """The report (see the module docstring); raises GpuDecodeUnavailable where the GPU decoder cannot run."""
    cpu_workers = os.cpu_count() or 1
    report = {"cpu_workers": cpu_workers, "clips_timed": num_clips}
    with tempfile.TemporaryDirectory(prefix="bench_gpu_decode_") as cache_dir:
        for resolution in RESOLUTIONS:
            on_gpu = datamodule("gpu", resolution, PLANNING_WORKERS, cache_dir, device)  # first: fails fast
            on_cpu = datamodule("cpu", resolution, cpu_workers, cache_dir, device)
            report |= {"device": torch.cuda.get_device_name(device), "backend": type(on_gpu.gpu_frames).__name__}
            cpu_rate = clips_per_second(on_cpu, device, num_clips)
            gpu_rate = clips_per_second(on_gpu, device, num_clips)
            first, second = validation_videos(on_gpu, device), validation_videos(on_gpu, device)
            levels = (first - validation_videos(on_cpu, device)).abs().float()
            report |= {f"{resolution} px: CPU clips/s ({cpu_workers} workers)": cpu_rate,
                       f"{resolution} px: GPU clips/s": gpu_rate, f"{resolution} px: GPU ÷ CPU": gpu_rate / cpu_rate,
                       f"{resolution} px: max abs diff to CPU (levels)": int(levels.max()),
                       f"{resolution} px: mean abs diff to CPU (levels)": float(levels.mean()),
                       f"{resolution} px: same bytes on two GPU runs": bool(torch.equal(first, second))}
        if isinstance(on_gpu.gpu_frames, NvCodecFrames):
            most, mean = native_difference(on_gpu.gpu_frames, on_gpu)
            report |= {"source size: max abs diff to decord (levels)": most,
                       "source size: mean abs diff to decord (levels)": mean}
    repeat = [key for key, value in report.items() if key.endswith("same bytes on two GPU runs") and not value]
    return report | ({"failed": repeat} if repeat else {})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--clips", type=int, default=64, help="clips timed per path and resolution")
    args = parser.parse_args(argv)
    try:
        report = measure(torch.device(args.device), args.clips)
    except GpuDecodeUnavailable as error:
        print(f"bench_gpu_decode: {error}", file=sys.stderr)
        return 2
    for key, value in report.items():
        print(f"{key}: {value}")
    print(json.dumps(report))
    return 1 if report.get("failed") else 0


if __name__ == "__main__":
    raise SystemExit(main())
