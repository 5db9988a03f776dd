"""PredictionLogger: a prior's fit writes a sampled, decoded prediction panel that TensorBoard can read back."""

import io
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.data import DataLoader

from vqvideo.callbacks.prediction_logger import PredictionLogger
from vqvideo.lit.bottom_prior_module import BottomPriorModule
from vqvideo.lit.top_prior_module import TopPriorModule
from vqvideo.lit.vqvae_module import VQVAEModule
from vqvideo.sampling.panels import GAP, HEADER_HEIGHT

NUM_CODES, LATENT = 16, dict(top_shape=(4, 4, 4), bottom_shape=(8, 8, 8))  # 16 frames of 32x32 pixels


@pytest.fixture(scope="module")
def vqvae_checkpoint(tmp_path_factory) -> Path:
    module = VQVAEModule(hidden_channels=16, residual_channels=8, num_residual_layers=1, num_top_codes=NUM_CODES,
                         num_bottom_codes=NUM_CODES, code_dim=8, num_frames=16, resolution=32)
    path = tmp_path_factory.mktemp("vqvae") / "vqvae.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return path


def top_stage():
    module = TopPriorModule(num_top_codes=NUM_CODES, num_bottom_codes=NUM_CODES, **LATENT, cond_top_shape=(1, 4, 4),
                            cond_bottom_shape=(2, 8, 8), channels=16, residual_channels=16, num_layers=2,
                            attention_every=0, num_heads=2, cond_embed_channels=8, cond_downsampled_channels=8,
                            cond_channels=8, cond_residual_channels=8, num_cond_res_blocks=1, warmup_steps=1)
    items = [{"cond_top": torch.randint(NUM_CODES, (1, 4, 4)), "cond_bottom": torch.randint(NUM_CODES, (2, 8, 8)),
              "target_top": torch.randint(NUM_CODES, (3, 4, 4))} for _ in range(4)]
    return module, items, "prediction/top_prior_top_level_only"


def bottom_stage():
    module = BottomPriorModule(num_codes=NUM_CODES, num_top_codes=NUM_CODES, **LATENT, num_given_slices=2,
                               hidden_channels=16, residual_channels=16, num_layers=2, num_attention_layers=0,
                               num_heads=2, top_embed_dim=8, top_channels=8, bottom_embed_dim=8, window_channels=8,
                               cond_channels=8, cond_residual_channels=8, num_cond_blocks=1, warmup_steps=1)
    items = [{"top_codes": torch.randint(NUM_CODES, (4, 4, 4)), "bottom_codes": torch.randint(NUM_CODES, (8, 8, 8)),
              "slice_index": torch.tensor(2 + index % 6)} for index in range(4)]
    return module, items, "prediction/bottom_prior_given_true_top"


@pytest.mark.parametrize("make_stage", [top_stage, bottom_stage], ids=["top", "bottom"])
def test_fit_logs_a_prediction_panel_to_tensorboard(make_stage, vqvae_checkpoint, tmp_path):
    module, items, tag = make_stage()
    logger = pl.loggers.TensorBoardLogger(tmp_path, name="prior")
    callback = PredictionLogger(str(vqvae_checkpoint), every_n_validations=2, num_clips=2, num_samples=2)
    trainer = pl.Trainer(max_steps=2, val_check_interval=1, check_val_every_n_epoch=None, limit_val_batches=1,
                         num_sanity_val_steps=1, logger=logger, callbacks=[callback], enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    loader = DataLoader(items, batch_size=2)
    trainer.fit(module, loader, loader)
    assert callback.validation_runs == 2  # the sanity check does not count
    events = EventAccumulator(logger.log_dir, size_guidance={"images": 0})
    events.Reload()
    images = events.Images(tag)
    assert len(images) == 1  # every 2nd validation: once (and not again at the end)
    with Image.open(io.BytesIO(images[0].encoded_image_string)) as gif:
        assert gif.n_frames == 16
        # two clips stacked, each [ground truth | sample 1 | sample 2]
        assert gif.size == (3 * 32 + 2 * GAP, 2 * (HEADER_HEIGHT + 32))


def test_a_run_ending_between_logging_validations_logs_at_the_end(vqvae_checkpoint, tmp_path):
    module, items, tag = bottom_stage()
    logger = pl.loggers.TensorBoardLogger(tmp_path, name="prior")
    callback = PredictionLogger(str(vqvae_checkpoint), every_n_validations=5, num_clips=1, num_samples=1)
    trainer = pl.Trainer(max_steps=2, val_check_interval=1, check_val_every_n_epoch=None, limit_val_batches=1,
                         logger=logger, callbacks=[callback], enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu")
    loader = DataLoader(items, batch_size=2)
    trainer.fit(module, loader, loader)
    events = EventAccumulator(logger.log_dir, size_guidance={"images": 0})
    events.Reload()
    assert [image.step for image in events.Images(tag)] == [2]
    assert module.training  # left as Lightning had it


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        PredictionLogger("x.ckpt", every_n_validations=0)
