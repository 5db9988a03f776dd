"""Stage checkpoints load safely (weights_only) from what `vqvideo fit` writes, with clear errors otherwise."""

import pytest
import torch
from pytorch_lightning import LightningModule

from vqvideo.lit.checkpoints import CheckpointError, load_stage


class TinyStage(LightningModule):
    def __init__(self, width: int = 3, kernel: tuple = (4, 8, 8)):
        super().__init__()
        self.save_hyperparameters()
        self.linear = torch.nn.Linear(width, 2)


def _save(path, module, **extra_hparams):
    hparams = dict(module.hparams) | extra_hparams
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": hparams}, path)


def test_loads_lightning_cli_checkpoint_frozen(tmp_path):
    stage = TinyStage(width=5)
    # what LightningCLI's subclass mode adds to a module's saved hyperparameters
    _save(tmp_path / "s.ckpt", stage, _class_path="tests.TinyStage", _instantiator="lightning.cli.instantiate_module")
    loaded = load_stage(TinyStage, tmp_path / "s.ckpt")
    assert loaded.hparams.width == 5 and not loaded.training
    assert not any(p.requires_grad for p in loaded.parameters())
    assert torch.equal(loaded.linear.weight, stage.linear.weight)


def test_missing_checkpoint_names_file_and_fix(tmp_path):
    with pytest.raises(CheckpointError, match=r"missing\.ckpt does not exist: train that stage first"):
        load_stage(TinyStage, tmp_path / "missing.ckpt")


def test_truncated_checkpoint_is_reported(tmp_path):
    path = tmp_path / "cut.ckpt"
    _save(path, TinyStage())
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(CheckpointError, match=r"cut\.ckpt could not be read"):
        load_stage(TinyStage, path)


def test_checkpoint_of_another_stage_is_refused(tmp_path):
    _save(tmp_path / "other.ckpt", TinyStage(), num_codes=512)
    with pytest.raises(CheckpointError, match="does not hold a TinyStage"):
        load_stage(TinyStage, tmp_path / "other.ckpt")


def test_pickled_code_is_not_executed(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"state_dict": {}, "hyper_parameters": {"width": Payload()}}, tmp_path / "evil.ckpt")
    with pytest.raises(CheckpointError, match="could not be read"):
        load_stage(TinyStage, tmp_path / "evil.ckpt")
