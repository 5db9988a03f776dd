"""TopPriorModule: initial loss, learning, code_spec check, checkpoint round trip, video summary, 2-process DDP."""

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from pytorch_lightning import LightningDataModule, Trainer
from pytorch_lightning.loggers import TensorBoardLogger
from torch.utils.data import DataLoader, Dataset

from vqvideo.lit.top_prior_module import TopPriorModule, load_top_prior
from vqvideo.models.vqvae import VQVAE

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
TINY = dict(
    num_top_codes=32, num_bottom_codes=16, top_shape=(3, 4, 4), bottom_shape=(6, 8, 8), cond_top_shape=(1, 4, 4),
    cond_bottom_shape=(2, 8, 8), channels=16, residual_channels=16, num_layers=2, attention_every=1, num_heads=2,
    dropout=0.0, cond_embed_channels=8, cond_downsampled_channels=16, cond_channels=16, cond_residual_channels=8,
    num_cond_res_blocks=1, learning_rate=3e-3, warmup_steps=1, video_sampler="cached",
)  # fmt: skip


class CopyCodes(Dataset):
    """Top batches whose future repeats the given top slice: learnable through the conditioning stack."""

    def __init__(self, num_clips: int = 16, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        top_shape, bottom_shape = (num_clips, *TINY["cond_top_shape"]), (num_clips, *TINY["cond_bottom_shape"])
        self.cond_top = torch.randint(0, TINY["num_top_codes"], top_shape, generator=generator)
        self.cond_bottom = torch.randint(0, TINY["num_bottom_codes"], bottom_shape, generator=generator)

    def __len__(self) -> int:
        return len(self.cond_top)

    def __getitem__(self, index: int) -> dict:
        cond_top = self.cond_top[index]
        return {"cond_top": cond_top, "cond_bottom": self.cond_bottom[index], "target_top": cond_top.repeat(2, 1, 1)}


class CopyCodesDataModule(LightningDataModule):
    def __init__(self, **spec_overrides) -> None:
        super().__init__()
        keys = ("num_top_codes", "num_bottom_codes", "top_shape", "bottom_shape", "cond_top_shape", "cond_bottom_shape")
        self.code_spec = {key: TINY[key] for key in keys} | spec_overrides

    def train_dataloader(self):
        return DataLoader(CopyCodes(), batch_size=4, shuffle=True)

    def val_dataloader(self):
        return DataLoader(CopyCodes(num_clips=4, seed=1), batch_size=4)


def trainer_for(tmp_path, **overrides) -> Trainer:
    args = dict(
        accelerator="cpu", max_steps=2, logger=False, enable_progress_bar=False, enable_model_summary=False,
        enable_checkpointing=False, default_root_dir=tmp_path, num_sanity_val_steps=0, limit_val_batches=1,
    )  # fmt: skip
    return Trainer(**(args | overrides))


def batch_loss(module: TopPriorModule, batch: dict) -> float:
    module.eval()
    with torch.no_grad():
        logits = module.prior(batch["target_top"], batch["cond_top"], batch["cond_bottom"])
    return F.cross_entropy(logits, batch["target_top"]).item()


def test_initial_loss_is_log_num_codes_at_demo_config():
    args = yaml.safe_load((EXPERIMENTS / "demo" / "top_prior.yaml").read_text())["model"]["init_args"]
    torch.manual_seed(0)
    module = TopPriorModule(**args)
    generator = torch.Generator().manual_seed(0)
    batch = {
        "target_top": torch.randint(0, 512, (4, 3, 8, 8), generator=generator),
        "cond_top": torch.randint(0, 512, (4, 1, 8, 8), generator=generator),
        "cond_bottom": torch.randint(0, 512, (4, 2, 16, 16), generator=generator),
    }
    assert batch_loss(module, batch) == pytest.approx(math.log(512), abs=0.1)


def test_a_few_cpu_steps_lower_the_loss(tmp_path):
    torch.manual_seed(0)
    module = TopPriorModule(**TINY)
    batch = next(iter(DataLoader(CopyCodes(), batch_size=16)))
    before = batch_loss(module, batch)
    module.train()
    trainer_for(tmp_path, max_steps=30, limit_val_batches=0).fit(module, datamodule=CopyCodesDataModule())
    assert batch_loss(module, batch) < before - 0.3


def test_code_spec_mismatch_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"model.init_args.top_shape: \[3, 4, 4\] but the code cache has \[3, 8, 8\]"):
        trainer_for(tmp_path).fit(TopPriorModule(**TINY), datamodule=CopyCodesDataModule(top_shape=(3, 8, 8)))


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    module = TopPriorModule(**TINY)
    trainer = trainer_for(tmp_path, max_steps=1)
    trainer.fit(module, datamodule=CopyCodesDataModule())
    trainer.save_checkpoint(tmp_path / "top_prior.ckpt")
    prior = load_top_prior(str(tmp_path / "top_prior.ckpt"))
    assert not prior.training and not any(p.requires_grad for p in prior.parameters())
    batch = next(iter(DataLoader(CopyCodes(), batch_size=2)))
    module.eval()
    with torch.no_grad():
        inputs = (batch["target_top"], batch["cond_top"], batch["cond_bottom"])
        torch.testing.assert_close(prior(*inputs), module.prior(*inputs))


def test_sampled_video_reaches_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    torch.manual_seed(0)
    module = TopPriorModule(**(TINY | {"vqvae_checkpoint": "injected-below"}))
    vqvae = VQVAE(
        hidden_channels=8, residual_channels=4, num_residual_layers=1, num_top_codes=32, num_bottom_codes=16, code_dim=8
    )
    module._frozen_vqvae.append(vqvae.eval())  # stands in for load_vqvae(vqvae_checkpoint)
    logger = TensorBoardLogger(tmp_path, name="top_prior")
    trainer_for(tmp_path, logger=logger, val_check_interval=2).fit(module, datamodule=CopyCodesDataModule())
    events = EventAccumulator(logger.log_dir, size_guidance={"images": 0})
    events.Reload()
    assert "val/true_top_vs_sampled_top" in events.Tags()["images"]
    image = events.Images("val/true_top_vs_sampled_top")[0]
    assert image.encoded_image_string[:6] == b"GIF89a" and image.width == 2 * 32


@pytest.mark.ddp
def test_two_process_ddp_fit(tmp_path):
    trainer = trainer_for(tmp_path, devices=2, strategy="ddp_spawn")
    torch.manual_seed(0)
    module = TopPriorModule(**TINY)
    initial = [p.detach().clone() for p in module.prior.parameters()]
    trainer.fit(module, datamodule=CopyCodesDataModule())
    assert trainer.state.finished
    assert math.isfinite(trainer.callback_metrics["val/loss"].item())
    trained = list(module.prior.parameters())  # ddp_spawn copies rank 0's weights back
    assert any(not torch.equal(before, after) for before, after in zip(initial, trained))
