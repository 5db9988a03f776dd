"""`vqvideo demo`'s eval stage: `vqvideo eval` on the demo's checkpoints into <out>/eval, replacing an eval of older
checkpoints, resuming an unfinished one, and pointed at in the final printout."""

from __future__ import annotations

import json

from test_demo import REPO, FakeStages  # the stand-in stages of the demo tests

import vqvideo.commands.demo as demo


def run_demo(monkeypatch, out, *args):
    monkeypatch.chdir(REPO)
    fake = FakeStages(out)
    monkeypatch.setattr(demo.subprocess, "run", fake)
    return demo.main([f"--out={out}", *args]), fake


def test_eval_runs_last_on_the_demo_checkpoints_and_is_announced(monkeypatch, tmp_path, capsys):
    out = tmp_path / "demo"
    code, fake = run_demo(monkeypatch, out)
    assert code == 0 and [stage for stage, _ in fake.ran][-1] == "eval"
    command = fake.command_of("eval")
    assert command[3] == "eval" and f"--out={out / 'eval'}" in command
    for flag, stage in (("--vqvae", "vqvae"), ("--top", "top_prior"), ("--bottom", "bottom_prior")):
        assert f"{flag}={out / f'{stage}.ckpt'}" in command
    assert f"--num_samples={demo.EVAL_SAMPLES}" in command and not any(part.startswith("--i3d") for part in command)
    assert "--overwrite" in command  # its checkpoints were just trained: an older eval there is replaced
    assert str(out / "eval" / "index.html") in capsys.readouterr().out
    assert json.loads((out / "timings.json").read_text())["stages"]["eval"]["status"] == "ran"


def test_an_unfinished_eval_is_resumed_not_replaced(monkeypatch, tmp_path):
    out = tmp_path / "demo"
    run_demo(monkeypatch, out)
    (out / "eval" / "report.json").unlink()  # killed before its report
    code, fake = run_demo(monkeypatch, out)
    assert code == 0 and [stage for stage, _ in fake.ran] == ["eval"]
    assert "--overwrite" not in fake.command_of("eval")
