"""VQVAEModule end to end: loss goes down, metrics logged, checkpoint (weights_only, plain hparams) -> load_vqvae,
frozen use, clip_shape checked up front."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger
from tiny_models import blob_clips, collate, tiny_vqvae_config, tiny_vqvae_module
from torch.utils.data import DataLoader

from vqvideo.lit.checkpoints import load_stage
from vqvideo.lit.optimization import OptimizationConfig
from vqvideo.lit.vqvae_module import BottomMaskSchedule, VQVAEModule, load_vqvae


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("vqvae_fit")
    optimization = OptimizationConfig(learning_rate=3e-3, warmup_steps=2)
    module = tiny_vqvae_module(clip_shape=(8, 32, 32), optimization=optimization, num_top_codes=32,
                               num_bottom_codes=32, restart_dead_codes=True, dead_code_patience=5)
    train_loader = DataLoader(blob_clips(16, seed=1), batch_size=4, collate_fn=collate)
    val_loader = DataLoader(blob_clips(4, seed=2), batch_size=4, collate_fn=collate)
    val_video = collate(blob_clips(4, seed=2))["video"]
    trainer = pl.Trainer(
        max_steps=24, accelerator="cpu", logger=TensorBoardLogger(out, name="vqvae"), enable_progress_bar=False,
        callbacks=[ModelCheckpoint(dirpath=out, filename="vqvae", enable_version_counter=False)],
        enable_model_summary=False, val_check_interval=12, check_val_every_n_epoch=None, num_sanity_val_steps=0,
    )
    module.vqvae(val_video)  # data-init, so "before" is the codebook-initialised model
    with torch.no_grad():
        mse_before = torch.mean((module.vqvae.eval().reconstruct(val_video) - val_video) ** 2).item()
    module.train()
    trainer.fit(module, train_loader, val_loader)
    return module, trainer, out, val_video, mse_before


def test_training_lowers_reconstruction_error(trained):
    module, trainer, _, val_video, mse_before = trained
    module.eval()
    with torch.no_grad():
        mse_after = torch.mean((module.vqvae.reconstruct(val_video) - val_video) ** 2).item()
    assert mse_after < 0.7 * mse_before
    logged = trainer.logged_metrics
    for key in ("val/psnr", "val/perplexity_top", "val/codes_used_bottom", "train/dead_code_restarts_top"):
        assert key in logged, key


def test_checkpoint_load_vqvae_gives_identical_codes(trained):
    module, _, out, val_video, _ = trained
    frozen = load_vqvae(out / "vqvae.ckpt")
    assert not frozen.training and not any(p.requires_grad for p in frozen.parameters())
    frozen.train()  # a parent module switching to train mode must not unfreeze it
    assert not frozen.training
    module.eval()
    with torch.no_grad():
        expected, got = module.vqvae.encode(val_video), frozen.encode(val_video)
    assert torch.equal(expected.top, got.top) and torch.equal(expected.bottom, got.bottom)


def test_module_with_frozen_vqvae_stays_eval():
    module = tiny_vqvae_module()
    module.requires_grad_(False)
    module.train()
    assert not module.vqvae.training


def test_checkpoint_hparams_are_plain_values_that_rebuild_the_module(trained):
    _, _, out, _, _ = trained
    checkpoint = torch.load(out / "vqvae.ckpt", map_location="cpu", weights_only=True)
    hparams = checkpoint["hyper_parameters"]
    assert set(hparams) == {"vqvae", "commitment_cost", "optimization", "bottom_mask_schedule", "clip_shape",
                            "channels_last"}
    assert hparams["vqvae"]["num_top_codes"] == 32 and hparams["vqvae"]["dead_code_patience"] == 5
    assert tuple(hparams["clip_shape"]) == (8, 32, 32) and hparams["optimization"]["warmup_steps"] == 2
    module = load_stage(VQVAEModule, out / "vqvae.ckpt")
    assert module.vqvae.config == tiny_vqvae_config(num_top_codes=32, num_bottom_codes=32, restart_dead_codes=True,
                                                    dead_code_patience=5)


def test_clip_shape_the_strides_cannot_divide_fails_at_construction():
    with pytest.raises(ValueError, match="not divisible by the total stride"):
        tiny_vqvae_module(clip_shape=(8, 30, 32))
    with pytest.raises(ValueError, match="no clip_shape"):
        tiny_vqvae_module(clip_shape=None).example_inputs()


def test_validation_logs_top_only_and_mean_colour_psnr_as_computed_by_hand(trained):
    """val/psnr_top_only and val/psnr_mean_colour: PSNR (data range 2, pooled over the epoch) of the top codes
    decoded with the bottom masked, and of each clip's mean colour, against the validation clips."""
    module, trainer, _, val_video, _ = trained
    metrics = trainer.validate(module, DataLoader(blob_clips(4, seed=2), batch_size=4, collate_fn=collate))[0]
    module.eval()
    with torch.no_grad():
        top_only = module.vqvae.decode_top_only(module.vqvae.encode(val_video).top).clamp(-1, 1)
    mean_colour = val_video.mean(dim=(2, 3, 4), keepdim=True).expand_as(val_video)
    for name, estimate in (("psnr_top_only", top_only), ("psnr_mean_colour", mean_colour)):
        expected = 10 * torch.log10(4.0 / torch.mean((estimate - val_video) ** 2))
        assert metrics[f"val/{name}"] == pytest.approx(expected.item(), abs=1e-3), name


def test_bottom_mask_schedule_goes_from_its_start_to_the_configured_probability():
    torch.manual_seed(0)
    module = VQVAEModule(vqvae=tiny_vqvae_config(bottom_mask_prob=0.2), clip_shape=(8, 32, 32),
                         bottom_mask_schedule=BottomMaskSchedule(start_prob=1.0, decay_steps=4))
    seen, forward = [], module.vqvae.forward

    def recording_forward(video, bottom_mask_prob=None):
        seen.append(bottom_mask_prob)
        return forward(video, bottom_mask_prob)

    module.vqvae.forward = recording_forward
    trainer = pl.Trainer(max_steps=6, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, DataLoader(blob_clips(12, seed=3), batch_size=2, collate_fn=collate))
    assert seen == pytest.approx([1.0, 0.8, 0.6, 0.4, 0.2, 0.2])
    with pytest.raises(ValueError, match="start_prob"):
        VQVAEModule(vqvae=tiny_vqvae_config(), bottom_mask_schedule=BottomMaskSchedule(start_prob=1.5))


def test_channels_last_is_a_layout_only(tmp_path):
    """Same weights, same clips: the channels-last module computes what the default one does, trains in bf16
    autocast (the demo's settings), and its checkpoint loads into a default-layout VQ-VAE with the same codes."""
    torch.manual_seed(0)
    default = tiny_vqvae_module(clip_shape=(8, 32, 32))
    channels_last = VQVAEModule(vqvae=default.vqvae.config, clip_shape=(8, 32, 32), channels_last=True)
    channels_last.load_state_dict(default.state_dict())
    weight = channels_last.vqvae.decoder[0].weight
    assert weight.is_contiguous(memory_format=torch.channels_last_3d) and not weight.is_contiguous()
    video = collate(blob_clips(4, seed=4))["video"]
    default.eval(), channels_last.eval()
    with torch.no_grad():
        expected, got = default.vqvae.reconstruct(video), channels_last.vqvae.reconstruct(video)
    assert got.is_contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    trainer = pl.Trainer(max_steps=3, accelerator="cpu", precision="bf16-mixed", logger=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[ModelCheckpoint(dirpath=tmp_path, filename="vqvae")])
    trainer.fit(channels_last.train(), DataLoader(blob_clips(12, seed=3), batch_size=4, collate_fn=collate))
    assert torch.isfinite(trainer.logged_metrics["train/loss"])
    assert channels_last.vqvae.decoder[0].weight.dtype == torch.float32
    frozen = load_vqvae(tmp_path / "vqvae.ckpt")
    assert frozen.decoder[0].weight.is_contiguous(memory_format=torch.channels_last_3d)
    plain = tiny_vqvae_module(clip_shape=(8, 32, 32)).vqvae.eval()
    plain.load_state_dict(frozen.state_dict())
    channels_last.eval()
    with torch.no_grad():
        trained_codes, loaded_codes = channels_last.vqvae.encode(video), plain.encode(video)
    assert torch.equal(trained_codes.top, loaded_codes.top)
    assert (trained_codes.bottom == loaded_codes.bottom).float().mean() > 0.99
