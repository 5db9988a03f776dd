"""PrecomputeCodesAtFitEnd: a VQ-VAE fit ends by building the cache from the very checkpoint it wrote."""

from __future__ import annotations

import pytorch_lightning as pl
from cache_helpers import NUM_FRAMES, RESOLUTION, TINY_VQVAE, assert_codes_match_vqvae, precompute_args
from pytorch_lightning.callbacks import ModelCheckpoint

from vqvideo.cache.manifest import read_manifest
from vqvideo.callbacks.precompute_callback import PrecomputeCodesAtFitEnd
from vqvideo.data.datamodule import KineticsDataModule
from vqvideo.files import file_sha256
from vqvideo.lit.vqvae_module import VQVAEModule


def test_fit_end_builds_the_cache_of_the_saved_checkpoint(tmp_path):
    pl.seed_everything(0)
    data = KineticsDataModule(None, num_frames=NUM_FRAMES, resolution=RESOLUTION, batch_size=2, num_workers=0,
                              max_clips_per_video=1, index_cache_dir=str(tmp_path / "index"), progress=False)
    module = VQVAEModule(vqvae=TINY_VQVAE, clip_shape=data.clip_shape)  # what the CLI links
    # the checkpoint and out paths the callback passes come last, so they win over these
    extra = precompute_args(tmp_path / "unused.ckpt", tmp_path / "unused", tmp_path / "index", "--splits", "[val]")
    callback = PrecomputeCodesAtFitEnd(out=str(tmp_path / "codes"), config=None, args=extra[4:])
    trainer = pl.Trainer(accelerator="cpu", max_steps=1, limit_val_batches=0, logger=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                         callbacks=[ModelCheckpoint(dirpath=tmp_path, filename="vqvae"), callback])
    trainer.fit(module, datamodule=data)
    checkpoint = tmp_path / "vqvae.ckpt"
    manifest = read_manifest(tmp_path / "codes")
    assert manifest.identity.vqvae_sha256 == file_sha256(checkpoint)
    assert manifest.code_spec.top_shape[0] == NUM_FRAMES // 4  # clips of the checkpoint's clip_shape
    assert_codes_match_vqvae(tmp_path / "codes", checkpoint)
