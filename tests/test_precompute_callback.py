"""PrecomputeCodesAtFitEnd: a VQ-VAE fit ends by building the cache from the very checkpoint it wrote, exactly the
cache `vqvideo precompute` builds with the same settings; its demo YAML composes with the VQ-VAE's."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
from cache_helpers import NUM_FRAMES, RESOLUTION, TINY_VQVAE, assert_codes_match_vqvae, precompute_args
from pytorch_lightning.callbacks import ModelCheckpoint
from tiny_models import EXPERIMENTS

from vqvideo.cache.manifest import read_manifest
from vqvideo.callbacks.precompute import CacheRequest, PrecomputeCodesAtFitEnd
from vqvideo.commands import precompute
from vqvideo.data.datamodule import KineticsDataModule
from vqvideo.files import file_sha256
from vqvideo.lit.cli import build_cli
from vqvideo.lit.trainer_options import TrainerOptions
from vqvideo.lit.vqvae_module import VQVAEModule


def test_fit_end_builds_the_cache_that_vqvideo_precompute_builds(tmp_path, capsys):
    pl.seed_everything(0)
    data = KineticsDataModule(None, num_frames=NUM_FRAMES, resolution=RESOLUTION, batch_size=2, num_workers=0,
                              max_clips_per_video=1, index_cache_dir=str(tmp_path / "index"), progress=False)
    module = VQVAEModule(vqvae=TINY_VQVAE, clip_shape=data.clip_shape)  # what the CLI links
    cache_data = {"max_clips_per_video": 1, "random_flip": True, "batch_size": 2, "num_workers": 0,
                  "index_cache_dir": str(tmp_path / "index")}  # as precompute_args
    callback = PrecomputeCodesAtFitEnd(out=str(tmp_path / "codes"), data=cache_data, splits=["val"],
                                       rows_per_shard=4, trainer=TrainerOptions(accelerator="cpu", deterministic=True,
                                                                                 enable_progress_bar=False))
    trainer = pl.Trainer(accelerator="cpu", max_steps=1, limit_val_batches=0, logger=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                         callbacks=[ModelCheckpoint(dirpath=tmp_path, filename="vqvae"), callback])
    trainer.fit(module, datamodule=data)
    checkpoint = tmp_path / "vqvae.ckpt"
    manifest = read_manifest(tmp_path / "codes")
    assert manifest.identity.vqvae_sha256 == file_sha256(checkpoint)
    assert manifest.code_spec.top_shape[0] == NUM_FRAMES // 4  # clips of the checkpoint's clip shape
    assert_codes_match_vqvae(tmp_path / "codes", checkpoint)
    capsys.readouterr()
    # the command with the same settings recognises the cache as its own: same identity, nothing to redo
    argv = precompute_args(checkpoint, tmp_path / "codes", tmp_path / "index", "--splits", "[val]")
    assert precompute.main(argv) == 0
    assert "is already complete" in capsys.readouterr().out


def test_a_data_option_that_is_no_datamodule_option_fails_before_training():
    with pytest.raises(ValueError, match=r"\['clip_stride'\] are not KineticsDataModule options"):
        PrecomputeCodesAtFitEnd(data={"clip_stride": 4})
    with pytest.raises(ValueError, match="checkpoint's"):
        PrecomputeCodesAtFitEnd(data={"resolution": 32})


def test_the_demo_yaml_adds_the_callback_with_precompute_yaml_settings(tmp_path):
    demo = EXPERIMENTS / "demo"
    cli = build_cli(["--config", str(demo / "vqvae.yaml"), "--config", str(demo / "codes_at_fit_end.yaml"),
                     f"--data.init_args.index_cache_dir={tmp_path}"], run=False)
    names = [type(callback).__name__ for callback in cli.trainer.callbacks]
    assert {"ModelCheckpoint", "VideoLogger", "PrecomputeCodesAtFitEnd"} <= set(names)  # appended, not replaced
    callback = next(c for c in cli.trainer.callbacks if isinstance(c, PrecomputeCodesAtFitEnd))
    parsed = precompute.build_parser().parse_args(["--config", str(demo / "precompute.yaml")])
    command = precompute.cache_request(parsed)
    assert isinstance(callback.request, CacheRequest) and callback.request.data_options() == command.data_options()
    same = ("out", "splits", "num_given_frames", "rows_per_shard", "overwrite")
    assert [getattr(callback.request, name) for name in same] == [getattr(command, name) for name in same]
    assert (callback.trainer.accelerator, callback.trainer.precision) == ("cpu", "32-true")
