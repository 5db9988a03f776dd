"""VideoLogger, the one video callback of all three stages: a fit writes a GIF that TensorBoard reads back (VQ-VAE
reconstructions, top prior and bottom prior samples decoded by the code cache's VQ-VAE), on schedule and at the end
of a run cut short, with the same draws for the same seed, and clear errors."""

import io
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tiny_models import (CLIP_SHAPE, TINY_SPEC, blob_clips, bottom_batch, collate, save_checkpoint,
                         tiny_bottom_module, tiny_top_module, tiny_vqvae_module, top_batch)
from torch.utils.data import DataLoader

from vqvideo.callbacks.video_logger import BOTTOM_TAG, TOP_TAG, VQVAE_TAG, VideoLogger, log_video
from vqvideo.panels import GAP, HEADER_HEIGHT

NUM_FRAMES, SIZE = CLIP_SHAPE[0], CLIP_SHAPE[1]


@pytest.fixture(scope="module")
def vqvae_checkpoint(tmp_path_factory) -> Path:
    """The VQ-VAE that decodes TINY_SPEC's codes: 16×32×32 clips → top 4×4×4, bottom 8×8×8."""
    torch.manual_seed(0)
    return save_checkpoint(tiny_vqvae_module(), tmp_path_factory.mktemp("vqvae") / "vqvae.ckpt")


class PriorData(pl.LightningDataModule):
    """Stands in for CodesDataModule: batches of cached codes, the cache's code_spec and the VQ-VAE that encoded it."""

    def __init__(self, items: list[dict], vqvae_checkpoint: str | None) -> None:
        super().__init__()
        self.items, self.code_spec = items, TINY_SPEC
        if vqvae_checkpoint is not None:
            self.vqvae_checkpoint = vqvae_checkpoint

    def train_dataloader(self):
        return DataLoader(self.items, batch_size=2)

    def val_dataloader(self):
        return DataLoader(self.items, batch_size=2)


class ClipData(pl.LightningDataModule):
    def train_dataloader(self):
        return DataLoader(blob_clips(4, seed=1), batch_size=2, collate_fn=collate)

    def val_dataloader(self):
        return DataLoader(blob_clips(2, seed=2), batch_size=2, collate_fn=collate)


def unbatch(batch: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    return [{key: value[index] for key, value in batch.items()} for index in range(len(next(iter(batch.values()))))]


def stage(name: str, vqvae_checkpoint: Path | None):
    """(module, datamodule, tag, (frames, height, width) of the logged GIF) of one stage."""
    torch.manual_seed(0)
    prior_panel = (NUM_FRAMES, 2 * (HEADER_HEIGHT + SIZE), 3 * SIZE + 2 * GAP)  # 2 clips × [truth | 2 samples]
    checkpoint = str(vqvae_checkpoint) if vqvae_checkpoint else None
    if name == "vqvae":
        return tiny_vqvae_module(clip_shape=(8, 32, 32)), ClipData(), VQVAE_TAG, (8, 2 * 32, 3 * 32)
    if name == "top":
        data = PriorData(unbatch(top_batch(batch_size=4)), checkpoint)
        return tiny_top_module(num_attention_layers=0), data, TOP_TAG, prior_panel
    data = PriorData(unbatch(bottom_batch(batch_size=4)), checkpoint)
    return tiny_bottom_module(num_attention_layers=0), data, BOTTOM_TAG, prior_panel


def fit(module, data, callback, tmp_path, **trainer_args) -> pl.loggers.TensorBoardLogger:
    logger = pl.loggers.TensorBoardLogger(tmp_path, name="stage")
    args = dict(max_steps=2, val_check_interval=1, check_val_every_n_epoch=None, limit_val_batches=1,
                num_sanity_val_steps=1, logger=logger, callbacks=[callback], enable_checkpointing=False,
                enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    pl.Trainer(**(args | trainer_args)).fit(module, datamodule=data)
    return logger


def logged_images(logger, tag: str) -> list:
    events = EventAccumulator(logger.log_dir, size_guidance={"images": 0})
    events.Reload()
    return events.Images(tag) if tag in events.Tags()["images"] else []


@pytest.mark.parametrize("name", ["vqvae", "top", "bottom"])
def test_fit_logs_a_video_to_tensorboard(name, vqvae_checkpoint, tmp_path):
    """Priors decode with the VQ-VAE of their data (the code cache's), as `vqvideo fit` wires it."""
    module, data, tag, (frames, height, width) = stage(name, vqvae_checkpoint)
    callback = VideoLogger(every_n_validations=2, num_clips=2, num_samples=2)
    logger = fit(module, data, callback, tmp_path)
    assert callback.validation_runs == 2  # the sanity check does not count
    images = logged_images(logger, tag)
    assert len(images) == 1  # every 2nd validation: once (and not again at the end)
    assert images[0].encoded_image_string[:6] == b"GIF89a"
    with Image.open(io.BytesIO(images[0].encoded_image_string)) as gif:
        assert (gif.n_frames, gif.size) == (frames, (width, height))


def test_a_run_ending_between_logging_validations_logs_at_the_end(vqvae_checkpoint, tmp_path):
    module, data, tag, _ = stage("bottom", vqvae_checkpoint)
    callback = VideoLogger(every_n_validations=5, num_clips=1, num_samples=1)
    logger = fit(module, data, callback, tmp_path, num_sanity_val_steps=0)
    assert [image.step for image in logged_images(logger, tag)] == [2]
    assert module.training  # left as Lightning had it


def test_an_explicit_vqvae_checkpoint_wins_over_the_caches(vqvae_checkpoint, tmp_path):
    module, data, tag, _ = stage("top", tmp_path / "missing.ckpt")  # the data names a checkpoint that is gone
    callback = VideoLogger(num_clips=1, num_samples=1, vqvae_checkpoint=str(vqvae_checkpoint))
    logger = fit(module, data, callback, tmp_path, max_steps=1, num_sanity_val_steps=0)
    assert len(logged_images(logger, tag)) == 1


def test_a_prior_whose_vqvae_is_gone_stops_before_training(tmp_path):
    """A cache built from another working directory names a path that does not resolve here: say so at the start,
    not at the first logging validation."""
    module, data, _, _ = stage("bottom", tmp_path / "elsewhere" / "vqvae.ckpt")
    before = [p.detach().clone() for p in module.parameters()]
    with pytest.raises(FileNotFoundError, match=r"elsewhere/vqvae.ckpt.*vqvae_checkpoint"):
        fit(module, data, VideoLogger(every_n_validations=5, num_clips=1, num_samples=1), tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(before, module.parameters()))  # no step was taken


def test_a_prior_without_a_known_vqvae_is_one_clear_error(tmp_path):
    module, data, _, _ = stage("top", None)
    with pytest.raises(ValueError, match="set vqvae_checkpoint"):
        fit(module, data, VideoLogger(num_clips=1, num_samples=1), tmp_path, max_steps=1, num_sanity_val_steps=0)


@pytest.mark.parametrize("name", ["top", "bottom"])
def test_same_seed_same_samples(name, vqvae_checkpoint):
    module, data, _, _ = stage(name, vqvae_checkpoint)
    batch = next(iter(data.val_dataloader()))
    module.eval()

    def video(seed: int) -> torch.Tensor:
        callback = VideoLogger(num_clips=2, num_samples=2, seed=seed, vqvae_checkpoint=str(vqvae_checkpoint))
        return callback.video(None, module, batch)[1]

    assert torch.equal(video(0), video(0))
    assert not torch.equal(video(0), video(1))


def test_log_video_needs_a_batch_of_clips():
    with pytest.raises(ValueError, match=r"\(N, 3, T, H, W\)"):
        log_video(None, "tag", torch.zeros(3, 4, 8, 8), step=0)


@pytest.mark.parametrize("bad", [{"every_n_validations": 0}, {"num_clips": 0}, {"num_samples": 0},
                                 {"sampler": "fast"}, {"temperature": 0.0}])
def test_bad_arguments_are_refused(bad):
    with pytest.raises(ValueError):
        VideoLogger(**bad)
