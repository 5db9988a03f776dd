"""Video VQ-VAE: paper-scale shapes on meta, shape errors, encode/decode consistency, frozen use, and the
LightningModule end to end (loss goes down, GIF summary in the event file, checkpoint -> load_vqvae)."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger
from torch.utils.data import DataLoader

from vqvideo.lit.schedules import warmup_cosine
from vqvideo.lit.vqvae_module import VQVAEModule, load_vqvae
from vqvideo.models.vqvae import VQVAE, encode_given_frames

TINY = dict(hidden_channels=16, residual_channels=8, num_residual_layers=1, num_top_codes=32, num_bottom_codes=32,
            code_dim=8)


def test_paper_scale_shapes_on_meta():
    with torch.device("meta"):
        vqvae = VQVAE()  # Table 3 defaults
        video = torch.zeros(2, 3, 16, 256, 256)
        codes = vqvae.encode(video)
        given = encode_given_frames(vqvae, video, num_given_frames=4)
        reconstruction = vqvae.eval()(video).reconstruction
    assert vqvae.latent_shapes(16, 256, 256) == ((4, 32, 32), (8, 64, 64))
    assert codes.top.shape == (2, 4, 32, 32) and codes.bottom.shape == (2, 8, 64, 64)
    assert codes.top.dtype == torch.int64 and codes.bottom.dtype == torch.int64
    assert given.top.shape == (2, 1, 32, 32) and given.bottom.shape == (2, 2, 64, 64)
    assert reconstruction.shape == video.shape


def test_other_strides_and_clear_shape_errors():
    vqvae = VQVAE(**TINY, bottom_kernel=(4, 4, 4), bottom_stride=(2, 2, 2))
    assert vqvae.latent_shapes(16, 64, 64) == ((4, 16, 16), (8, 32, 32))
    with pytest.raises(ValueError, match=r"not divisible by the total stride \(4, 4, 4\)"):
        vqvae.encode(torch.zeros(1, 3, 16, 62, 64))
    with pytest.raises(ValueError, match="differ from it by an even number"):
        VQVAE(**TINY, bottom_kernel=(3, 8, 8))


def test_eval_forward_equals_decode_of_encode():
    torch.manual_seed(0)
    vqvae = VQVAE(**TINY).train()
    video = torch.rand(2, 3, 8, 32, 32) * 2 - 1
    vqvae(video)  # data-initialise the codebooks
    vqvae.eval()
    with torch.no_grad():
        forward_reconstruction = vqvae(video).reconstruction
        codes = vqvae.encode(video)
        assert torch.allclose(vqvae.decode_codes(*codes), forward_reconstruction, atol=1e-6)
        assert torch.allclose(vqvae.reconstruct(video), forward_reconstruction, atol=1e-6)


def test_bottom_masking_only_in_training():
    torch.manual_seed(0)
    vqvae = VQVAE(**TINY, bottom_mask_prob=1.0).train()
    video = torch.rand(1, 3, 8, 32, 32) * 2 - 1
    masked = vqvae(video).reconstruction
    codes = vqvae.eval().encode(video)
    top_only = vqvae.decode_top_only(codes.top, tuple(codes.bottom.shape[1:]))
    assert torch.allclose(masked, top_only, atol=1e-5)  # training with p=1 decodes the top alone
    assert not torch.allclose(vqvae.reconstruct(video), top_only, atol=1e-5)


def test_frozen_vqvae_stays_in_eval_and_never_updates():
    parent = torch.nn.ModuleDict({"vqvae": VQVAE(**TINY, data_init=False).freeze()})
    parent.train()
    assert not parent["vqvae"].training and not parent["vqvae"].top_quantizer.training
    before = parent["vqvae"].bottom_quantizer.codebook.clone()
    parent["vqvae"](torch.rand(1, 3, 8, 32, 32))
    assert torch.equal(parent["vqvae"].bottom_quantizer.codebook, before)
    assert not any(p.requires_grad for p in parent.parameters())


def test_warmup_cosine_schedule():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = warmup_cosine(optimizer, warmup_steps=4, total_steps=14, min_lr_ratio=0.1)
    factors = []
    for _ in range(16):
        factors.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert factors[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert factors[9] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert factors[14:] == pytest.approx([0.1, 0.1])


# ----- LightningModule end to end ------------------------------------------------------------------
def clip_batches(num_clips: int, seed: int) -> list[dict]:
    """Smooth moving-blob clips (B, 3, 8, 32, 32) in [-1, 1] as the datamodule's dicts."""
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(8).float()[:, None, None]
    y, x = torch.meshgrid(torch.arange(32).float(), torch.arange(32).float(), indexing="ij")
    clips = []
    for _ in range(num_clips):
        cy, cx, vy, vx = (torch.rand(4, generator=generator) * torch.tensor([32, 32, 2, 2])).tolist()
        blob = torch.exp(-((y - cy - vy * t) ** 2 + (x - cx - vx * t) ** 2) / 40.0)  # (8, 32, 32)
        colour = torch.rand(3, generator=generator)[:, None, None, None]
        clips.append(blob[None] * colour * 2 - 1)
    return [{"video": clip[None]} for clip in clips]


def collate(items: list[dict]) -> dict:
    return {"video": torch.cat([item["video"] for item in items])}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("vqvae_fit")
    module = VQVAEModule(**TINY, num_frames=8, resolution=32, learning_rate=3e-3, warmup_steps=2,
                         restart_dead_codes=True, dead_code_patience=5, num_video_clips=2)
    train_loader = DataLoader(clip_batches(16, seed=1), batch_size=4, collate_fn=collate)
    val_loader = DataLoader(clip_batches(4, seed=2), batch_size=4, collate_fn=collate)
    val_video = collate(clip_batches(4, seed=2))["video"]
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


def test_video_summary_is_in_the_event_file(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, trainer, _, _, _ = trained
    accumulator = EventAccumulator(trainer.logger.log_dir, size_guidance={"images": 0})
    accumulator.Reload()
    tag = "val/input_reconstruction_toponly"
    assert tag in accumulator.Tags()["images"]
    image = accumulator.Images(tag)[-1]
    assert image.encoded_image_string[:6] in (b"GIF87a", b"GIF89a")
    assert (image.height, image.width) == (2 * 32, 3 * 32)  # 2 clips stacked; input | recon | top-only


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
    module = VQVAEModule(**TINY, num_frames=8, resolution=32)
    module.requires_grad_(False)
    module.train()
    assert not module.vqvae.training
