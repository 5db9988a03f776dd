"""StepBudget: a run ended by max_time before max_steps is announced and recorded; a finished budget, or a run that
EarlyStopping ended, is not a time cap."""

import json
from types import SimpleNamespace

import pytest

from pytorch_lightning.callbacks import EarlyStopping

from vqvideo.callbacks.step_budget import StepBudget


@pytest.mark.parametrize("steps,capped", [(40, True), (100, False)])
def test_records_whether_the_time_cap_ended_the_run(tmp_path, steps, capped):
    record = tmp_path / "vqvae.steps.json"
    callback = StepBudget(str(record))
    trainer = SimpleNamespace(global_step=steps, max_steps=100)
    callback.on_train_start(trainer, None)
    if capped:
        with pytest.warns(UserWarning, match="TIME CAP HIT.*step 40 of its 100-step budget"):
            callback.on_train_end(trainer, None)
    else:
        callback.on_train_end(trainer, None)
    written = json.loads(record.read_text())
    assert written["steps"] == steps and written["max_steps"] == 100 and written["time_cap_hit"] is capped


@pytest.mark.parametrize("patience_ran_out", [True, False])
def test_early_stopping_is_not_a_time_cap(tmp_path, patience_ran_out):
    record = tmp_path / "bottom_prior.steps.json"
    stopper = EarlyStopping(monitor="val/bits_per_code", patience=3)
    stopper.wait_count = 3 if patience_ran_out else 1
    trainer = SimpleNamespace(global_step=500, max_steps=1000, early_stopping_callbacks=[stopper])
    callback = StepBudget(str(record))
    callback.on_train_start(trainer, None)
    if patience_ran_out:
        callback.on_train_end(trainer, None)
    else:
        with pytest.warns(UserWarning, match="TIME CAP HIT"):
            callback.on_train_end(trainer, None)
    written = json.loads(record.read_text())
    assert written["early_stopped"] is patience_ran_out and written["time_cap_hit"] is not patience_ran_out
