"""Shared by the code cache tests: a tiny VQ-VAE saved as a real Lightning checkpoint, the precompute
arguments of a small cache of the bundled clips, and a cache's content keyed by clip (layout-independent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from tiny_models import tiny_vqvae_config

from vqvideo.cache.manifest import CODE_ARRAYS, read_manifest
from vqvideo.cache.shards import open_shard
from vqvideo.data.sources import embedded_clips
from vqvideo.data.video import read_clip
from vqvideo.lit.vqvae_module import VQVAEModule

NUM_FRAMES, RESOLUTION = 8, 32  # total strides (4, 8, 8): top (2,4,4), bottom (4,8,8); 4 given: (1,4,4), (2,8,8)
TINY_VQVAE = tiny_vqvae_config(hidden_channels=8, residual_channels=4, num_top_codes=16, num_bottom_codes=16,
                               code_dim=4)


def save_tiny_vqvae(path: Path, seed: int = 0) -> Path:
    """A 16-code VQ-VAE whose codebooks are initialised from real clips (so codes vary), saved by a Trainer."""
    torch.manual_seed(seed)
    module = VQVAEModule(vqvae=TINY_VQVAE, clip_shape=(NUM_FRAMES, RESOLUTION, RESOLUTION))
    clips = torch.stack([read_clip(str(p), 10 + seed, NUM_FRAMES, 1, RESOLUTION) for p in embedded_clips()])
    with torch.no_grad():
        module.train().vqvae(clips)  # data_init: codebooks from these clips' latents
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(path)
    return path


def precompute_args(checkpoint: Path, out: Path, index_dir: Path, *extra: str) -> list[str]:
    """9 clips of the checkpoint's clip shape: one window per video and split, train clips also mirrored; 2 per
    batch, 4 per shard."""
    return ["--vqvae", str(checkpoint), "--out", str(out), "--data.max_clips_per_video", "1",
            "--data.random_flip", "true", "--data.batch_size", "2", "--data.num_workers", "0",
            "--data.index_cache_dir", str(index_dir), "--rows_per_shard", "4", "--trainer.accelerator", "cpu",
            "--trainer.enable_progress_bar", "false", *extra]


def cache_content(cache_dir: Path) -> dict[int, tuple[dict, dict[str, np.ndarray]]]:
    """clip_id -> (clip record without its location, {array: codes}), whatever the shard layout."""
    manifest = read_manifest(cache_dir)
    shards = [open_shard(cache_dir, shard) for shard in manifest.shards]
    content = {}
    for clip, (shard, row) in zip(manifest.clips, manifest.locations):
        assert int(shards[shard]["clip_id"][row]) == clip.clip_id
        content[clip.clip_id] = (vars(clip), {name: np.array(shards[shard][name][row]) for name in CODE_ARRAYS})
    return content


def assert_same_content(expected: dict, actual: dict) -> None:
    assert expected.keys() == actual.keys()
    for clip_id, (record, arrays) in expected.items():
        assert actual[clip_id][0] == record
        for name, codes in arrays.items():
            np.testing.assert_array_equal(actual[clip_id][1][name], codes, err_msg=f"clip {clip_id} {name}")


def assert_codes_match_vqvae(cache_dir: Path, checkpoint: Path, batch_size: int = 2) -> None:
    """Every cached clip's codes equal `vqvae.encode` of that clip read by `read_clip` (center crop, its flip),
    and its given codes equal `encode_given_frames` of its first frames, as many as the manifest records (the function
    prediction calls).
    Encoded in batches of the precompute's batch size: kernels (and so rounding at near-ties) depend on it."""
    from vqvideo.lit.vqvae_module import load_vqvae
    from vqvideo.models.vqvae import encode_given_frames

    vqvae = load_vqvae(checkpoint)
    content = cache_content(cache_dir)
    num_given = read_manifest(cache_dir).code_spec.num_given_frames
    records = [content[i][0] for i in sorted(content)]
    videos = torch.stack([read_clip(r["video_path"], r["start_frame"], r["num_frames"], r["frame_stride"],
                                    RESOLUTION, crop="center", flip=r["flip"]) for r in records])
    padding = (-len(videos)) % batch_size
    videos = torch.cat([videos, videos[-1:].expand(padding, *videos.shape[1:])])
    expected = {"top": [], "bottom": [], "given_top": [], "given_bottom": []}
    with torch.no_grad():
        for chunk in videos.split(batch_size):
            full, given = vqvae.encode(chunk), encode_given_frames(vqvae, chunk, num_given)
            for name, codes in zip(expected, (full.top, full.bottom, given.top, given.bottom)):
                expected[name].append(codes)
    expected = {name: torch.cat(codes) for name, codes in expected.items()}
    for position, record in enumerate(records):
        for name, codes in expected.items():
            np.testing.assert_array_equal(content[record["clip_id"]][1][name], codes[position].numpy(),
                                          err_msg=f"clip {record['clip_id']} {name}")
