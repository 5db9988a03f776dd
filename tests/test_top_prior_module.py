"""TopPriorModule: initial loss ≈ log(num_codes), learning, the code cache's latent facts (required, checked against
the data), checkpoint round trip (weights_only, plain hparams), validate/test metrics, 2-process DDP."""

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from pytorch_lightning import LightningDataModule, Trainer
from tiny_models import (TINY_SPEC, experiment_code_spec, tiny_top_config, tiny_top_module, top_batch,
                         yaml_prior_config)
from torch.utils.data import DataLoader, Dataset

from vqvideo.lit.top_prior_module import TopPriorModule, load_top_prior

WIDE = dict(num_attention_layers=2, cond_downsampled_channels=16, cond_channels=16)  # 2 layers, attention after each


class CopyCodes(Dataset):
    """Top batches whose future repeats the given top slice: learnable through the conditioning stack."""

    def __init__(self, num_clips: int = 16, seed: int = 0) -> None:
        batch = top_batch(TINY_SPEC, num_clips, seed)
        self.given_top, self.given_bottom = batch["given_top"], batch["given_bottom"]

    def __len__(self) -> int:
        return len(self.given_top)

    def __getitem__(self, index: int) -> dict:
        given_top = self.given_top[index]
        target_top = given_top.repeat(TINY_SPEC.num_future_top_slices, 1, 1)
        return {"given_top": given_top, "given_bottom": self.given_bottom[index], "target_top": target_top}


class CopyCodesDataModule(LightningDataModule):
    """Stands in for CodesDataModule(target="top"): same batch keys and a code_spec."""

    def __init__(self, **spec_overrides) -> None:
        super().__init__()
        self.code_spec = replace(TINY_SPEC, **spec_overrides)

    def train_dataloader(self):
        return DataLoader(CopyCodes(), batch_size=4, shuffle=True)

    def val_dataloader(self):
        return DataLoader(CopyCodes(num_clips=4, seed=1), batch_size=4)

    def test_dataloader(self):
        return DataLoader(CopyCodes(num_clips=4, seed=2), batch_size=4)


def trainer_for(tmp_path, **overrides) -> Trainer:
    args = dict(
        accelerator="cpu", max_steps=2, logger=False, enable_progress_bar=False, enable_model_summary=False,
        enable_checkpointing=False, default_root_dir=tmp_path, num_sanity_val_steps=0, limit_val_batches=1,
    )  # fmt: skip
    return Trainer(**(args | overrides))


def batch_loss(module: TopPriorModule, batch: dict) -> float:
    module.eval()
    with torch.no_grad():
        logits = module.prior(batch["target_top"], batch["given_top"], batch["given_bottom"])
    return F.cross_entropy(logits, batch["target_top"]).item()


def test_initial_loss_is_log_num_codes_at_demo_config():
    spec = experiment_code_spec("demo")
    torch.manual_seed(0)
    module = TopPriorModule(prior=yaml_prior_config("demo", "top_prior"), code_spec=spec)
    assert spec.num_top_codes == 64  # experiments/demo/vqvae.yaml's top codebook, read from the YAML
    assert batch_loss(module, top_batch(spec, batch_size=4)) == pytest.approx(math.log(64), abs=0.1)


def test_a_few_cpu_steps_lower_the_loss(tmp_path):
    torch.manual_seed(0)
    module = tiny_top_module(**WIDE)
    batch = next(iter(DataLoader(CopyCodes(), batch_size=16)))
    before = batch_loss(module, batch)
    module.train()
    trainer_for(tmp_path, max_steps=30, limit_val_batches=0).fit(module, datamodule=CopyCodesDataModule())
    assert batch_loss(module, batch) < before - 0.3


def test_code_spec_is_required():
    with pytest.raises(ValueError, match="TopPriorModule needs the code cache's latent facts"):
        TopPriorModule(prior=tiny_top_config())


def test_code_spec_mismatch_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"built for the latent facts .*'top_shape': \[4, 4, 4\].* but the code cache"
                                         r" it is given has .*'top_shape': \[4, 8, 8\]"):
        trainer_for(tmp_path).fit(tiny_top_module(), datamodule=CopyCodesDataModule(top_shape=(4, 8, 8)))


def test_code_spec_from_a_checkpoint_dict_builds_the_same_prior():
    assert tiny_top_module(TINY_SPEC.as_dict()).code_spec == TINY_SPEC
    prior = tiny_top_module().prior
    assert prior.num_codes == TINY_SPEC.num_top_codes
    assert prior.conditioning.bottom_embedding.num_embeddings == TINY_SPEC.num_bottom_codes


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    module = tiny_top_module(**WIDE)
    trainer = trainer_for(tmp_path, max_steps=1)
    trainer.fit(module, datamodule=CopyCodesDataModule())
    trainer.save_checkpoint(tmp_path / "top_prior.ckpt")
    hparams = torch.load(tmp_path / "top_prior.ckpt", weights_only=True)["hyper_parameters"]
    assert set(hparams) == {"prior", "code_spec", "optimization"}
    assert hparams["code_spec"] == TINY_SPEC.as_dict() and hparams["prior"] == vars(tiny_top_config(**WIDE))
    prior = load_top_prior(str(tmp_path / "top_prior.ckpt"))
    assert not prior.training and not any(p.requires_grad for p in prior.parameters())
    batch = next(iter(DataLoader(CopyCodes(), batch_size=2)))
    module.eval()
    with torch.no_grad():
        inputs = (batch["target_top"], batch["given_top"], batch["given_bottom"])
        torch.testing.assert_close(prior(*inputs), module.prior(*inputs))


def test_validate_and_test_log_bits_beside_the_unigram_baseline(tmp_path):
    module, data = tiny_top_module(), CopyCodesDataModule()
    trainer = trainer_for(tmp_path)
    (validated,) = trainer.validate(module, datamodule=data, verbose=False)
    (tested,) = trainer.test(module, datamodule=data, verbose=False)
    targets = next(iter(data.test_dataloader()))["target_top"]
    probs = torch.bincount(targets.flatten()).double() / targets.numel()
    unigram = -(probs[probs > 0] * probs[probs > 0].log2()).sum().item()
    assert tested["test/unigram_bits_per_code"] == pytest.approx(unigram, rel=1e-5)
    assert tested["test/bits_per_code"] == pytest.approx(tested["test/loss"] / math.log(2), rel=1e-5)
    assert {"val/loss", "val/bits_per_code", "val/unigram_bits_per_code"} <= validated.keys()


@pytest.mark.ddp
def test_two_process_ddp_fit(tmp_path):
    trainer = trainer_for(tmp_path, devices=2, strategy="ddp_spawn")
    torch.manual_seed(0)
    module = tiny_top_module(**WIDE)
    initial = [p.detach().clone() for p in module.prior.parameters()]
    trainer.fit(module, datamodule=CopyCodesDataModule())
    assert trainer.state.finished
    assert math.isfinite(trainer.callback_metrics["val/loss"].item())
    trained = list(module.prior.parameters())  # ddp_spawn copies rank 0's weights back
    assert any(not torch.equal(before, after) for before, after in zip(initial, trained))
