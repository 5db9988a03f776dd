"""BottomPriorModule: initial loss ≈ log(num_codes), loss falls in a few CPU steps, code_spec mismatch is a clear
error, checkpoints reload through load_bottom_prior, the describe hook, and a 2-process DDP fit (CPU, gloo)."""

import math

import pytest
import torch
from pytorch_lightning import LightningDataModule, Trainer
from torch.utils.data import DataLoader, Dataset

from vqvideo.lit.bottom_prior_module import BottomPriorModule, check_code_spec, load_bottom_prior


TOP_SHAPE, BOTTOM_SHAPE, NUM_GIVEN = (4, 4, 4), (8, 8, 8), 2
TINY = dict(
    num_codes=32, num_top_codes=16, top_shape=TOP_SHAPE, bottom_shape=BOTTOM_SHAPE, num_given_slices=NUM_GIVEN,
    hidden_channels=16, residual_channels=16, num_layers=2, num_attention_layers=1, num_heads=2, kernel_size=3,
    top_embed_dim=8, top_channels=8, bottom_embed_dim=8, window_channels=8, cond_channels=16,
    cond_residual_channels=8, num_cond_blocks=1, learning_rate=3e-3, warmup_steps=1, lr_total_steps=100,
)  # fmt: skip


class StructuredCodes(Dataset):
    """Bottom codes that a prior can learn: each slice repeats the previous slice shifted by one code."""

    def __init__(self, num_clips: int = 16):
        generator = torch.Generator().manual_seed(0)
        self.top = torch.randint(0, 16, (num_clips, *TOP_SHAPE), generator=generator)
        first = torch.randint(0, 32, (num_clips, 1, *BOTTOM_SHAPE[1:]), generator=generator)
        self.bottom = (first + torch.arange(BOTTOM_SHAPE[0])[None, :, None, None]) % 32
        self.slice_index = torch.randint(NUM_GIVEN, BOTTOM_SHAPE[0], (num_clips,), generator=generator)

    def __len__(self):
        return len(self.top)

    def __getitem__(self, index):
        return {"top_codes": self.top[index], "bottom_codes": self.bottom[index], "slice_index": self.slice_index[index]}


class StructuredCodesDataModule(LightningDataModule):
    """Stands in for CodesDataModule(target="bottom"): same batch keys and a code_spec."""

    def __init__(self, num_codes: int = 32):
        super().__init__()
        self.code_spec = dict(
            num_top_codes=16, num_bottom_codes=num_codes, top_shape=TOP_SHAPE, bottom_shape=BOTTOM_SHAPE,
            cond_top_shape=(1, *TOP_SHAPE[1:]), cond_bottom_shape=(NUM_GIVEN, *BOTTOM_SHAPE[1:]), num_given_frames=4,
        )  # fmt: skip

    def train_dataloader(self):
        return DataLoader(StructuredCodes(), batch_size=4)

    def val_dataloader(self):
        return DataLoader(StructuredCodes(8), batch_size=4)


def batch_of(size=8):
    return next(iter(DataLoader(StructuredCodes(size), batch_size=size)))


def test_initial_loss_is_log_num_codes():
    torch.manual_seed(0)
    module = BottomPriorModule(**{**TINY, "num_codes": 512})
    batch = batch_of()
    batch["bottom_codes"] = batch["bottom_codes"] * 16  # spread over the 512 codes
    loss = module._shared_step(batch, "train")
    assert abs(loss.item() - math.log(512)) < 0.02 * math.log(512)


def test_loss_falls_in_a_few_cpu_steps():
    torch.manual_seed(0)
    module = BottomPriorModule(**TINY)
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-2)
    batch = batch_of()
    losses = []
    for _ in range(15):
        loss = module._shared_step(batch, "train")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


def test_code_spec_mismatch_names_the_setting_to_fix():
    spec = StructuredCodesDataModule(num_codes=64).code_spec
    with pytest.raises(ValueError, match="model.init_args.num_codes: 32 but the code cache has 64"):
        check_code_spec(dict(BottomPriorModule(**TINY).hparams), spec)
    check_code_spec(dict(BottomPriorModule(**TINY).hparams), StructuredCodesDataModule().code_spec)


def test_describe_hook_runs_one_forward_on_meta():
    with torch.device("meta"):
        module = BottomPriorModule()  # paper defaults: Tables 4 and 8
        logits = module.core(*module.example_inputs(batch_size=2))
    assert logits.shape == (2, 512, 64, 64)
    info = module.describe_info()
    assert info["bottom_shape"] == [8, 64, 64] and info["attention_after_layers"] == [5, 10, 15, 20]


def test_fit_writes_a_checkpoint_that_reloads(tmp_path):
    trainer = Trainer(
        accelerator="cpu", max_steps=4, limit_val_batches=1, logger=False, enable_progress_bar=False,  # 1 epoch
        enable_model_summary=False, default_root_dir=tmp_path, num_sanity_val_steps=0,
    )  # fmt: skip
    module = BottomPriorModule(**TINY)
    trainer.fit(module, datamodule=StructuredCodesDataModule())
    val_batch = next(iter(StructuredCodesDataModule().val_dataloader()))  # limit_val_batches=1
    targets = val_batch["bottom_codes"][torch.arange(4), val_batch["slice_index"]]
    probs = torch.bincount(targets.flatten()).double() / targets.numel()
    unigram = -(probs[probs > 0] * probs[probs > 0].log2()).sum()
    assert trainer.callback_metrics["val/unigram_bits_per_code"].item() == pytest.approx(unigram.item(), rel=1e-5)
    path = tmp_path / "bottom.ckpt"
    trainer.save_checkpoint(path)
    prior = load_bottom_prior(path)
    assert not prior.training and not any(p.requires_grad for p in prior.parameters())
    batch = batch_of(2)
    inputs = (batch["bottom_codes"], batch["top_codes"], batch["slice_index"])
    torch.testing.assert_close(prior(*inputs), module.eval().prior(*inputs))


def test_fit_refuses_a_cache_with_other_latent_facts(tmp_path):
    trainer = Trainer(accelerator="cpu", max_steps=1, logger=False, enable_progress_bar=False, default_root_dir=tmp_path)
    with pytest.raises(ValueError, match="num_codes"):
        trainer.fit(BottomPriorModule(**TINY), datamodule=StructuredCodesDataModule(num_codes=64))


@pytest.mark.ddp
def test_two_process_ddp_fit(tmp_path):
    from pytorch_lightning.callbacks import ModelCheckpoint

    checkpoint = ModelCheckpoint(dirpath=tmp_path, filename="bottom_prior", enable_version_counter=False)
    trainer = Trainer(
        accelerator="cpu", devices=2, strategy="ddp_spawn", max_steps=2, limit_val_batches=1, logger=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path, num_sanity_val_steps=0,
        callbacks=[checkpoint],
    )  # fmt: skip
    module = BottomPriorModule(**TINY)
    initial = {name: value.clone() for name, value in module.state_dict().items()}
    trainer.fit(module, datamodule=StructuredCodesDataModule())
    saved = torch.load(tmp_path / "bottom_prior.ckpt", map_location="cpu", weights_only=True)
    assert saved["global_step"] == 2
    assert math.isfinite(trainer.callback_metrics["val/loss"].item())
    changed = [name for name, value in module.state_dict().items() if not torch.equal(value, initial[name])]
    assert changed, "the spawned ranks' trained weights did not come back to the main process"
