"""Shared by the `vqvideo eval` tests: tiny stage checkpoints (16×32×32 clips, codebooks initialised from the bundled
clips so codes vary), the eval's command line, and report.json without its run-dependent `run` section."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import torch
from tiny_models import CLIP_SHAPE, save_checkpoint, tiny_bottom_module, tiny_top_module, tiny_vqvae_module

from vqvideo.data.sources import embedded_clips
from vqvideo.data.video import read_clip

NUM_FRAMES, RESOLUTION = CLIP_SHAPE[0], CLIP_SHAPE[1]


def save_tiny_stages(root: Path, seed: int = 0) -> dict[str, Path]:
    """vqvae.ckpt, top_prior.ckpt, bottom_prior.ckpt under `root` (untrained priors: sampling is what is tested)."""
    torch.manual_seed(seed)
    vqvae = tiny_vqvae_module()
    clips = torch.stack([read_clip(str(path), 10, NUM_FRAMES, 1, RESOLUTION) for path in embedded_clips()])
    with torch.no_grad():
        vqvae.train().vqvae(clips)  # data_init: codebooks from these clips' latents
    data = {"_class_path": "vqvideo.data.datamodule.KineticsDataModule", "num_frames": NUM_FRAMES,
            "resolution": RESOLUTION, "frame_stride": 1, "val_fraction": 0.2}  # as LightningCLI saves it
    return {"vqvae": save_checkpoint(vqvae.eval(), root / "vqvae.ckpt", data),
            "top": save_checkpoint(tiny_top_module(), root / "top_prior.ckpt"),
            "bottom": save_checkpoint(tiny_bottom_module(), root / "bottom_prior.ckpt")}


def eval_args(checkpoints: dict[str, Path], out: Path, index_dir: Path, *extra: str) -> list[str]:
    return [f"--vqvae={checkpoints['vqvae']}", f"--top={checkpoints['top']}", f"--bottom={checkpoints['bottom']}",
            f"--out={out}", f"--data.index_cache_dir={index_dir}", "--trainer.accelerator=cpu",
            "--trainer.enable_progress_bar=false", *extra]


def comparable_report(out: Path) -> dict:
    """report.json without `run` (command line, devices, timings): what must not depend on how the eval ran."""
    report = json.loads((out / "report.json").read_text())
    report.pop("run")
    return report


def decoded_frames(path: Path) -> np.ndarray:
    """(T, H, W, 3) uint8 of an MP4."""
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def decoded_planes(path: Path) -> np.ndarray:
    """(T, 3H/2, W) uint8: the MP4's decoded YUV 4:2:0 planes, unconverted (no swscale rounding in the way)."""
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray() for frame in container.decode(video=0)])


def assert_same_videos(a: Path, b: Path) -> None:
    """Two eval folders hold the same systems and clips, frame for frame."""
    videos = sorted(path.relative_to(a) for path in (a / "videos").rglob("*.mp4"))
    assert videos and videos == sorted(path.relative_to(b) for path in (b / "videos").rglob("*.mp4"))
    for video in videos:
        assert np.array_equal(decoded_planes(a / video), decoded_planes(b / video)), video
