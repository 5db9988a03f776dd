"""BottomPriorModule: initial loss ≈ log(num_codes), loss falls in a few CPU steps, the code cache's latent facts
(required, checked against the data), checkpoints reload through load_bottom_prior (weights_only), the describe
hook, validate/test metrics, and a 2-process DDP fit (CPU, gloo)."""

import math
from dataclasses import replace

import pytest
import torch
from pytorch_lightning import LightningDataModule, Trainer
from tiny_models import (TINY_SPEC, bottom_batch, experiment_code_spec, tiny_bottom_config, tiny_bottom_module,
                         yaml_prior_config)
from torch.utils.data import DataLoader, Dataset

from vqvideo.lit.bottom_prior_module import BottomPriorModule, load_bottom_prior

SPEC = replace(TINY_SPEC, num_bottom_codes=32)
NUM_GIVEN, NUM_SLICES = SPEC.given_bottom_shape[0], SPEC.bottom_shape[0]
WIDE = dict(cond_channels=16)


class StructuredCodes(Dataset):
    """Bottom codes that a prior can learn: each slice repeats the previous slice shifted by one code."""

    def __init__(self, num_clips: int = 16):
        generator = torch.Generator().manual_seed(0)
        num_codes = SPEC.num_bottom_codes
        self.top = torch.randint(0, SPEC.num_top_codes, (num_clips, *SPEC.top_shape), generator=generator)
        first = torch.randint(0, num_codes, (num_clips, 1, *SPEC.bottom_shape[1:]), generator=generator)
        self.bottom = (first + torch.arange(NUM_SLICES)[None, :, None, None]) % num_codes
        self.slice_index = torch.randint(NUM_GIVEN, NUM_SLICES, (num_clips,), generator=generator)

    def __len__(self):
        return len(self.top)

    def __getitem__(self, index):
        return {"top_codes": self.top[index], "bottom_codes": self.bottom[index],
                "slice_index": self.slice_index[index]}


class StructuredCodesDataModule(LightningDataModule):
    """Stands in for CodesDataModule(target="bottom"): same batch keys and a code_spec."""

    def __init__(self, **spec_overrides):
        super().__init__()
        self.code_spec = replace(SPEC, **spec_overrides)

    def train_dataloader(self):
        return DataLoader(StructuredCodes(), batch_size=4)

    def val_dataloader(self):
        return DataLoader(StructuredCodes(8), batch_size=4)

    def test_dataloader(self):
        return DataLoader(StructuredCodes(4), batch_size=4)


def batch_of(size=8):
    return next(iter(DataLoader(StructuredCodes(size), batch_size=size)))


def module(spec=SPEC, **overrides) -> BottomPriorModule:
    return tiny_bottom_module(spec, **(WIDE | overrides))


def quiet_trainer(tmp_path, **overrides) -> Trainer:
    args = dict(accelerator="cpu", max_steps=4, limit_val_batches=1, logger=False, enable_progress_bar=False,
                enable_model_summary=False, default_root_dir=tmp_path, num_sanity_val_steps=0)
    return Trainer(**(args | overrides))


def test_initial_loss_is_log_num_codes():
    torch.manual_seed(0)
    wide = module(replace(SPEC, num_bottom_codes=512))
    batch = batch_of()
    batch["bottom_codes"] = batch["bottom_codes"] * 16  # spread over the 512 codes
    loss = wide._shared_step(batch, "train")
    assert abs(loss.item() - math.log(512)) < 0.02 * math.log(512)


def test_initial_loss_is_log_num_codes_at_demo_config():
    spec = experiment_code_spec("demo")
    torch.manual_seed(0)
    demo = BottomPriorModule(prior=yaml_prior_config("demo", "bottom_prior"), code_spec=spec)
    loss = demo._shared_step(bottom_batch(spec, batch_size=4), "train")
    assert spec.num_bottom_codes == 128 and loss.item() == pytest.approx(math.log(128), abs=0.1)  # demo vqvae.yaml


def test_loss_falls_in_a_few_cpu_steps():
    torch.manual_seed(0)
    prior_module = module()
    optimizer = torch.optim.AdamW(prior_module.parameters(), lr=1e-2)
    batch = batch_of()
    losses = []
    for _ in range(15):
        loss = prior_module._shared_step(batch, "train")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


def test_code_spec_is_required_and_builds_the_prior():
    with pytest.raises(ValueError, match="BottomPriorModule needs the code cache's latent facts"):
        BottomPriorModule(prior=tiny_bottom_config())
    prior = module(SPEC.as_dict()).prior  # as a checkpoint's hyperparameters hold it
    assert prior.num_codes == SPEC.num_bottom_codes and prior.pixelcnn.num_codes == SPEC.num_bottom_codes
    assert prior.conditioning.top.embedding.num_embeddings == SPEC.num_top_codes
    assert prior.conditioning.past.embedding.num_embeddings == SPEC.num_bottom_codes


def test_describe_hook_runs_one_forward_on_meta():
    with torch.device("meta"):
        paper = BottomPriorModule(code_spec=experiment_code_spec("kinetics600_256"))  # paper defaults: Tables 4, 8
        logits = paper.core(*paper.example_inputs(batch_size=2))
    assert logits.shape == (2, 512, 64, 64)
    info = paper.describe_info()
    assert info["bottom_shape"] == [8, 64, 64] and info["attention_after_layers"] == [5, 10, 15, 20]


def test_fit_writes_a_checkpoint_that_reloads(tmp_path):
    trainer = quiet_trainer(tmp_path)  # 4 steps = 1 epoch: one validation
    prior_module = module()
    trainer.fit(prior_module, datamodule=StructuredCodesDataModule())
    val_batch = next(iter(StructuredCodesDataModule().val_dataloader()))  # limit_val_batches=1
    targets = val_batch["bottom_codes"][torch.arange(4), val_batch["slice_index"]]
    probs = torch.bincount(targets.flatten()).double() / targets.numel()
    unigram = -(probs[probs > 0] * probs[probs > 0].log2()).sum()
    assert trainer.callback_metrics["val/unigram_bits_per_code"].item() == pytest.approx(unigram.item(), rel=1e-5)
    path = tmp_path / "bottom.ckpt"
    trainer.save_checkpoint(path)
    hparams = torch.load(path, weights_only=True)["hyper_parameters"]
    assert hparams["code_spec"] == SPEC.as_dict() and hparams["prior"]["cond_channels"] == 16
    prior = load_bottom_prior(path)
    assert not prior.training and not any(p.requires_grad for p in prior.parameters())
    batch = batch_of(2)
    inputs = (batch["bottom_codes"], batch["top_codes"], batch["slice_index"])
    torch.testing.assert_close(prior(*inputs), prior_module.eval().prior(*inputs))


def test_test_logs_bits_beside_the_unigram_baseline(tmp_path):
    (tested,) = quiet_trainer(tmp_path).test(module(), datamodule=StructuredCodesDataModule(), verbose=False)
    assert tested["test/bits_per_code"] == pytest.approx(tested["test/loss"] / math.log(2), rel=1e-5)
    assert 0 < tested["test/unigram_bits_per_code"] <= math.log2(SPEC.num_bottom_codes)


def test_fit_refuses_a_cache_with_other_latent_facts(tmp_path):
    with pytest.raises(ValueError, match=r"'num_bottom_codes': 32.* but the code cache it is given has .*"
                                         r"'num_bottom_codes': 64"):
        quiet_trainer(tmp_path, max_steps=1).fit(module(), datamodule=StructuredCodesDataModule(num_bottom_codes=64))


@pytest.mark.ddp
def test_two_process_ddp_fit(tmp_path):
    from pytorch_lightning.callbacks import ModelCheckpoint

    checkpoint = ModelCheckpoint(dirpath=tmp_path, filename="bottom_prior", enable_version_counter=False)
    trainer = quiet_trainer(tmp_path, devices=2, strategy="ddp_spawn", max_steps=2, callbacks=[checkpoint])
    prior_module = module()
    initial = {name: value.clone() for name, value in prior_module.state_dict().items()}
    trainer.fit(prior_module, datamodule=StructuredCodesDataModule())
    saved = torch.load(tmp_path / "bottom_prior.ckpt", map_location="cpu", weights_only=True)
    assert saved["global_step"] == 2
    assert math.isfinite(trainer.callback_metrics["val/loss"].item())
    changed = [name for name, value in prior_module.state_dict().items() if not torch.equal(value, initial[name])]
    assert changed, "the spawned ranks' trained weights did not come back to the main process"
