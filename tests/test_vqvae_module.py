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


def sixteen_frame_clips(num_clips: int, seed: int) -> list[dict]:
    """blob_clips played forward then back: (1, 3, 16, 32, 32) each, so the top level is 4 frames deep."""
    return [{"video": torch.cat([item["video"], item["video"].flip(2)], dim=2)} for item in blob_clips(num_clips, seed)]


def bf16_trainer(tmp_path, **overrides) -> pl.Trainer:
    args = dict(max_steps=3, accelerator="cpu", precision="bf16-mixed", logger=False, enable_progress_bar=False,
                enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp_path)
    return pl.Trainer(**(args | overrides))


def is_channels_last(tensor: torch.Tensor) -> bool:
    return tensor.is_contiguous(memory_format=torch.channels_last_3d) and not tensor.is_contiguous()


def test_channels_last_is_checked_then_adopted_and_is_a_layout_only(tmp_path):
    """Shapes where every convolution agrees: the first batch converts the VQ-VAE (not construction), it trains in
    bf16 autocast, and its checkpoint loads into a default-layout VQ-VAE that computes the same codes."""
    torch.manual_seed(0)
    module = VQVAEModule(vqvae=tiny_vqvae_config(), clip_shape=(16, 32, 32), channels_last=True)
    parameters = list(module.parameters())
    assert not is_channels_last(module.vqvae.decoder[0].weight)
    trainer = bf16_trainer(tmp_path, enable_checkpointing=True,
                           callbacks=[ModelCheckpoint(dirpath=tmp_path, filename="vqvae")])
    trainer.fit(module, DataLoader(sixteen_frame_clips(12, seed=3), batch_size=4, collate_fn=collate))
    convs = [conv for conv in module.vqvae.modules() if isinstance(conv, (torch.nn.Conv3d, torch.nn.ConvTranspose3d))]
    assert all(conv.weight.is_contiguous(memory_format=torch.channels_last_3d) for conv in convs)
    assert is_channels_last(module.vqvae.decoder[0].weight)
    assert list(module.parameters()) == parameters and module.vqvae.decoder[0].weight.dtype == torch.float32
    assert all(torch.isfinite(p).all() for p in parameters) and torch.isfinite(trainer.logged_metrics["train/loss"])
    frozen = load_vqvae(tmp_path / "vqvae.ckpt")
    assert not is_channels_last(frozen.decoder[0].weight)  # inference keeps the default layout
    video = collate(sixteen_frame_clips(4, seed=4))["video"]
    module.eval()
    with torch.no_grad():
        trained, loaded = module.vqvae.encode(video), frozen.encode(video)
        torch.testing.assert_close(module.vqvae.reconstruct(video), frozen.reconstruct(video), atol=1e-4, rtol=1e-4)
    assert torch.equal(trained.top, loaded.top)
    assert (trained.bottom == loaded.bottom).float().mean() > 0.99


def test_channels_last_stays_off_when_a_convolution_disagrees(tmp_path, monkeypatch):
    monkeypatch.setattr(VQVAEModule, "channels_last_verdicts",
                        lambda self, video: {"decoder.0": True, "top_encoder.2": False})
    module = VQVAEModule(vqvae=tiny_vqvae_config(), clip_shape=(16, 32, 32), channels_last=True)
    with pytest.warns(UserWarning, match=r"keeps the default layout.*under bf16-mixed.*: top_encoder\.2$"):
        bf16_trainer(tmp_path).fit(module, DataLoader(sixteen_frame_clips(8, seed=3), batch_size=4,
                                                      collate_fn=collate))
    assert not any(is_channels_last(p) for p in module.parameters())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_channels_last_never_trains_on_broken_gradients(tmp_path, seed):
    """The failure this check exists for: a hidden-8 VQ-VAE on 8-frame clips (top level 2 frames deep), bf16,
    converted at construction, got NaN weights within 2 steps for 1 or 2 seeds in 3 (torch 2.13, CPU)."""
    torch.manual_seed(seed)
    module = VQVAEModule(vqvae=tiny_vqvae_config(hidden_channels=8, residual_channels=4), clip_shape=(8, 32, 32),
                         channels_last=True, bottom_mask_schedule=BottomMaskSchedule(1.0, 100),
                         optimization=OptimizationConfig(learning_rate=3e-3, warmup_steps=1, min_lr_ratio=0.3))
    bf16_trainer(tmp_path, max_steps=2, gradient_clip_val=0.5).fit(
        module, DataLoader(blob_clips(8, seed=1), batch_size=2, collate_fn=collate))
    assert all(torch.isfinite(p).all() for p in module.parameters())


class RankOneDisagrees(VQVAEModule):
    """Rank 1's check finds a convolution that disagrees in channels-last; rank 0's finds none."""

    def channels_last_verdicts(self, video: torch.Tensor) -> dict[str, bool]:
        return super().channels_last_verdicts(video) | {"decoder.0": self.global_rank != 1}


class RecordLayout(pl.Callback):
    def __init__(self, folder) -> None:
        self.folder = folder

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        layout = is_channels_last(pl_module.vqvae.decoder[0].weight)
        (self.folder / f"rank{trainer.global_rank}").write_text(str(layout))


@pytest.mark.ddp
@pytest.mark.parametrize("module_class, expected", [(VQVAEModule, "True"), (RankOneDisagrees, "False")])
def test_two_process_ddp_ranks_adopt_channels_last_together(tmp_path, module_class, expected):
    """The layout is decided once for all ranks: one rank's disagreement keeps every rank in the default layout."""
    module = module_class(vqvae=tiny_vqvae_config(), clip_shape=(16, 32, 32), channels_last=True)
    trainer = bf16_trainer(tmp_path, max_steps=2, devices=2, strategy="ddp_spawn", callbacks=[RecordLayout(tmp_path)])
    trainer.fit(module, DataLoader(sixteen_frame_clips(8, seed=3), batch_size=2, collate_fn=collate))
    assert [(tmp_path / f"rank{rank}").read_text() for rank in (0, 1)] == [expected, expected]


def test_channels_last_run_resumed_from_a_checkpoint_ends_where_the_whole_run_does(tmp_path):
    """The check runs again on the resumed run's first batch: channels-last again, and the weights of the run
    without a stop. Only parameters are compared: the codebooks' EMA buffers of a resumed run differ from the whole
    run's in the default layout just as much (the global RNG is not restored on resume)."""

    def fit(max_steps: int, ckpt_path=None, callbacks=()) -> VQVAEModule:
        torch.manual_seed(0)
        module = VQVAEModule(vqvae=tiny_vqvae_config(), clip_shape=(16, 32, 32), channels_last=True)
        trainer = bf16_trainer(tmp_path, max_steps=max_steps, enable_checkpointing=bool(callbacks),
                               callbacks=list(callbacks))
        loader = DataLoader(sixteen_frame_clips(8, seed=3), batch_size=4, collate_fn=collate)
        trainer.fit(module, loader, ckpt_path=ckpt_path)
        return module

    whole = fit(4)
    fit(2, callbacks=[ModelCheckpoint(dirpath=tmp_path, filename="half", enable_version_counter=False)])
    resumed = fit(4, ckpt_path=tmp_path / "half.ckpt")
    assert is_channels_last(resumed.vqvae.decoder[0].weight)
    for (name, expected), got in zip(whole.named_parameters(), resumed.parameters()):
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0, msg=name)
