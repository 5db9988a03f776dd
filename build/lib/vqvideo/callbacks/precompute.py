"""Building the code cache: `build_code_cache` (what `vqvideo precompute` runs) and `PrecomputeCodesAtFitEnd`, the
callback that runs it when a VQ-VAE fit ends, from the checkpoint that fit wrote.

Both encode the same clips into the same files with `CodeEncoderModule` + `CodeCacheWriter` in Lightning's
prediction loop, and refuse a cache made by another checkpoint, dataset or clip selection (`overwrite` rebuilds it).
Killed at any point, the same call finishes the cache with exactly the content of an uninterrupted run.

The callback in a training YAML (experiments/demo/codes_at_fit_end.yaml adds it to the demo VQ-VAE's fit):
    trainer:
      callbacks+:
        - class_path: vqvideo.callbacks.precompute.PrecomputeCodesAtFitEnd
          init_args: {out: outputs/demo/codes, data: {clip_step: 4, random_flip: true}, splits: [train, val]}
Under DDP the cache is built by global rank 0 alone, on one device, after training has finished.
"""

from __future__ import annotations

import inspect
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from vqvideo.cache.manifest import (
    MANIFEST_BYTES_PER_CLIP, MANIFEST_NAME, CacheError, CacheIdentity, code_spec_of, read_manifest,
)
from vqvideo.cache.plan import plan_clips, plan_sha256
from vqvideo.cache.shards import done_clip_ids
from vqvideo.cache.writer import check_identity, existing_identity
from vqvideo.callbacks.code_cache import CodeCacheWriter
from vqvideo.data.datamodule import KineticsDataModule
from vqvideo.data.fixed_clips import FixedClipsDataModule
from vqvideo.files import explain_disk_full, file_sha256
from vqvideo.lit.checkpoints import read_checkpoint
from vqvideo.lit.code_encoder import CodeEncoderModule
from vqvideo.lit.trainer_options import TrainerOptions, run_prediction
from vqvideo.lit.vqvae_module import load_vqvae
from vqvideo.models.vqvae import NUM_GIVEN_FRAMES

# KineticsDataModule options that change which pixels are encoded (recorded in the cache identity); the others
# (batch_size, num_workers, decode_device, ...) only change how fast.
SELECTION_OPTIONS = ("root", "source", "frame_stride", "target_fps", "val_fraction",
                     "max_clips_per_video", "clip_step", "random_flip")


# the clip shape (frames, resolution) is the VQ-VAE checkpoint's; progress and pin_memory do not apply
DATA_FROM_CHECKPOINT = ("num_frames", "resolution", "progress", "pin_memory")


def data_defaults() -> dict[str, Any]:
    """KineticsDataModule's options a cache request may set, with their defaults."""
    parameters = inspect.signature(KineticsDataModule).parameters
    return {name: parameter.default for name, parameter in parameters.items() if name not in DATA_FROM_CHECKPOINT}


@dataclass
class CacheRequest:
    """One code cache: the VQ-VAE checkpoint that encodes it, where it goes, which clips (`data`: KineticsDataModule
    options other than the checkpoint's clip shape, defaults for the rest), the splits, the frames given at
    prediction (recorded for every later stage) and the clips per shard."""

    vqvae: str
    out: str
    data: dict[str, Any] = field(default_factory=dict)
    splits: list[str] = field(default_factory=lambda: ["train", "val"])
    num_given_frames: int = NUM_GIVEN_FRAMES
    rows_per_shard: int = 2048
    overwrite: bool = False

    def __post_init__(self) -> None:
        unknown = sorted(set(self.data) - set(data_defaults()))
        if unknown:
            raise ValueError(f"code cache data options {unknown} are not KineticsDataModule options (or are the "
                             f"checkpoint's: {', '.join(DATA_FROM_CHECKPOINT)}); choose from "
                             f"{', '.join(data_defaults())}")

    def data_options(self) -> dict[str, Any]:
        return data_defaults() | self.data


def vqvae_identity_parts(checkpoint_path: str) -> tuple[str, dict]:
    """(sha256 of the checkpoint file, its hyper_parameters as plain JSON values)."""
    hparams = read_checkpoint(checkpoint_path).get("hyper_parameters", {})
    return file_sha256(checkpoint_path), json.loads(json.dumps(hparams, sort_keys=True, default=str))


def vqvae_clip_shape(checkpoint_path: str, hparams: dict) -> tuple[int, int, int]:
    """(frames, height, width) of the clips the VQ-VAE was trained on (its recorded clip_shape): the cached clips."""
    clip_shape = hparams.get("clip_shape")
    if not clip_shape:
        raise CacheError(f"{checkpoint_path} records no clip_shape: pass a VQ-VAE checkpoint written by `vqvideo fit`")
    return tuple(int(size) for size in clip_shape)


def plan_clips_of(request: CacheRequest, clip_shape: tuple[int, int, int]):
    """(datamodule after setup, planned clips, selection dict recorded in the identity)."""
    num_frames, resolution, _ = clip_shape
    data = request.data_options()
    datamodule = KineticsDataModule(**data, num_frames=num_frames, resolution=resolution, progress=False)
    datamodule.setup()
    clips = plan_clips(datamodule, tuple(request.splits), horizontal_flips=data["random_flip"])
    if not clips:
        raise CacheError(f"no clip to encode in splits {request.splits} of {data['root'] or 'the embedded clips'}: "
                         "check --data.root and --splits")
    selection = {name: data[name] for name in SELECTION_OPTIONS}
    selection |= {"num_frames": num_frames, "resolution": resolution, "splits": list(request.splits),
                  "num_given_frames": request.num_given_frames}
    return datamodule, clips, json.loads(json.dumps(selection))


def build_code_cache(request: CacheRequest, trainer: TrainerOptions) -> Path:
    """Plan the clips, check the output directory, and run the prediction loop; returns the cache dir."""
    out = Path(request.out)
    vqvae = load_vqvae(request.vqvae)
    vqvae_sha256, vqvae_hparams = vqvae_identity_parts(request.vqvae)
    clip_shape = vqvae_clip_shape(request.vqvae, vqvae_hparams)
    code_spec = code_spec_of(vqvae, clip_shape, request.num_given_frames)
    datamodule, clips, selection = plan_clips_of(request, clip_shape)
    resolution = clip_shape[1]
    identity = CacheIdentity(str(request.vqvae), vqvae_sha256, vqvae_hparams, datamodule.index.fingerprint,
                             selection, plan_sha256(clips))
    if not request.overwrite:
        check_identity(out, identity)  # every rank, before the trainer: all ranks refuse alike
        if (out / MANIFEST_NAME).is_file() and existing_identity(out).mismatch(identity) is None:
            print(f"code cache {out} is already complete ({len(clips)} clips); --overwrite rebuilds it")
            return out
    writer = CodeCacheWriter(out, identity, code_spec, clips, request.rows_per_shard, request.overwrite)
    sizes = {entry.path: (entry.height, entry.width) for entry in datamodule.index.entries}
    data = request.data_options()
    pending = FixedClipsDataModule(clips, resolution, data["batch_size"], data["num_workers"], data["decode_device"],
                                   sizes, done_ids=lambda: done_clip_ids(out))
    encoder = CodeEncoderModule(vqvae, request.num_given_frames, data["batch_size"])
    needed = len(clips) * (code_spec.bytes_per_clip + MANIFEST_BYTES_PER_CLIP)
    with explain_disk_full(out, needed, "the code cache", "run the same command again: it keeps the finished shards"):
        is_global_zero = run_prediction(trainer, str(out), writer, encoder, pending)
    if is_global_zero:
        manifest = read_manifest(out)
        if manifest.failed_clips:
            print(f"{len(manifest.failed_clips)} clips could not be read (manifest.json: failed_clips), e.g. "
                  f"{manifest.failed_clips[0]['reason']}", file=sys.stderr)
        print(f"code cache {out}: {len(manifest.clips)} clips in {len(manifest.shards)} shards "
              f"(top {code_spec.top_shape}, bottom {code_spec.bottom_shape}, given frames alone: "
              f"{code_spec.given_top_shape}, {code_spec.given_bottom_shape})")
    return out


class PrecomputeCodesAtFitEnd(Callback):
    """At the end of a VQ-VAE fit, `build_code_cache` from the checkpoint the fit wrote (its ModelCheckpoint's best).

    out, data, splits, num_given_frames, rows_per_shard, overwrite: as in `CacheRequest` (overwrite: rebuild the
    cache every fit); trainer: the prediction loop's options (always 1 device, rank 0; deterministic by default)."""

    def __init__(self, out: str = "outputs/demo/codes", data: dict[str, Any] | None = None,
                 splits: list[str] | None = None, num_given_frames: int = NUM_GIVEN_FRAMES, rows_per_shard: int = 2048,
                 overwrite: bool = False, trainer: TrainerOptions | None = None) -> None:
        splits = ["train", "val"] if splits is None else list(splits)
        # the checkpoint is only known at fit end; checking the rest now fails a bad YAML before training
        self.request = CacheRequest("", out, dict(data or {}), splits, num_given_frames, rows_per_shard, overwrite)
        self.trainer = trainer or TrainerOptions(deterministic=True)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        checkpoint = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if not checkpoint:
            raise RuntimeError(
                "PrecomputeCodesAtFitEnd needs the checkpoint this fit wrote: add a ModelCheckpoint callback "
                "(e.g. dirpath: outputs/demo, filename: vqvae, save_top_k: 1) to the trainer"
            )
        options = TrainerOptions(**(vars(self.trainer) | {"devices": 1, "num_nodes": 1, "strategy": "auto"}))
        request = CacheRequest(**(vars(self.request) | {"vqvae": checkpoint}))
        build_code_cache(request, options)
