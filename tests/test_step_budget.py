"""StepBudget: a run ended by max_time before max_steps is announced and recorded; a finished budget is not."""

import json
from types import SimpleNamespace

import pytest

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
