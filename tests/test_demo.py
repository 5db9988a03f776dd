"""`vqvideo demo` orchestration with stand-in stages: order, reuse of finished stages, redo after a change,
`--fresh`, failures, and configs rewritten for another output folder. (The real pipeline is `make demo`.)"""

import json
from pathlib import Path

import pytest

import vqvideo.demo as demo

REPO = Path(__file__).resolve().parents[1]


class FakeStages:
    """Stands in for `subprocess.run`: records each stage and writes the output a real run would."""

    def __init__(self, out: Path, fail: str | None = None):
        self.out, self.fail, self.ran = out, fail, []

    def __call__(self, command, **kwargs):
        stage = self.stage_of(command)
        self.ran.append((stage, command))
        if stage == self.fail:
            return type("Result", (), {"returncode": 3})()
        if stage == "precompute":
            (self.out / "codes").mkdir(parents=True, exist_ok=True)
            (self.out / "codes" / "manifest.json").write_text("{}")
        elif stage in ("predict", "rollout"):
            folder = Path(self.argument(command, "--out"))
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "bikes_val.gif").write_bytes(b"GIF89a")
            (folder / "summary.json").write_text("{}")
        elif stage == "eval":
            folder = Path(self.argument(command, "--out"))
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "report.json").write_text("{}")
        else:
            (self.out / f"{stage}.ckpt").write_bytes(stage.encode() * (len(self.ran) + 1))
        return type("Result", (), {"returncode": 0})()

    @staticmethod
    def argument(command, name):
        return next(part.split("=", 1)[1] for part in command if part.startswith(f"{name}="))

    def stage_of(self, command):
        if command[3] == "fit":
            return Path(command[5]).stem
        if command[3] == "predict":  # predictions/ (16 frames) or rollout/ (--num_frames)
            return "rollout" if any(part.startswith("--num_frames=") for part in command) else "predict"
        return command[3]

    def command_of(self, stage):
        return next(command for ran_stage, command in self.ran if ran_stage == stage)


@pytest.fixture
def run(monkeypatch, tmp_path):
    monkeypatch.chdir(REPO)  # configs are found relative to the repository root

    def run_demo(*args, out=tmp_path / "demo", fail=None):
        fake = FakeStages(out, fail)
        monkeypatch.setattr(demo.subprocess, "run", fake)
        code = demo.main([f"--out={out}", "--sampler=naive", *args])
        return code, [stage for stage, _ in fake.ran], fake

    return run_demo


ALL = ["vqvae", "precompute", "top_prior", "bottom_prior", "predict", "rollout", "eval"]


def test_runs_every_stage_then_reuses_them(run, tmp_path):
    code, ran, fake = run()
    assert code == 0 and ran == ALL
    timings = json.loads((tmp_path / "demo" / "timings.json").read_text())
    assert list(timings["stages"]) == ALL and all(r["status"] == "ran" for r in timings["stages"].values())
    assert fake.ran[0][1][:3] == [demo.sys.executable, "-m", "vqvideo.cli"]
    predict_command = fake.command_of("predict")
    assert "--input=embedded:val" in predict_command and f"--out={tmp_path / 'demo' / 'predictions'}" in predict_command
    assert f"--out={tmp_path / 'demo' / 'rollout'}" in fake.command_of("rollout")
    code, ran, _ = run()
    assert code == 0 and ran == []
    timings = json.loads((tmp_path / "demo" / "timings.json").read_text())
    assert all(r["status"] == "reused" for r in timings["stages"].values())


def test_a_changed_checkpoint_redoes_it_and_everything_after(run, tmp_path):
    run()
    (tmp_path / "demo" / "top_prior.ckpt").write_bytes(b"from an interrupted run")
    code, ran, fake = run()
    assert code == 0 and ran == ["top_prior", "bottom_prior", "predict", "rollout", "eval"]
    run()
    (tmp_path / "demo" / "vqvae.ckpt").unlink()
    code, ran, fake = run()
    assert ran == ALL and "--overwrite" in fake.ran[1][1]  # the cache of the old VQ-VAE is rebuilt


def test_fresh_redoes_everything(run, tmp_path):
    run()
    (tmp_path / "demo" / "tb").mkdir()
    (tmp_path / "demo" / "unrelated.txt").write_text("kept")
    code, ran, _ = run("--fresh")
    assert code == 0 and ran == ALL
    assert not (tmp_path / "demo" / "tb").exists() and (tmp_path / "demo" / "unrelated.txt").exists()


def test_a_failed_stage_stops_and_resumes_there(run, tmp_path, capsys):
    code, ran, _ = run(fail="top_prior")
    assert code == 1 and ran == ["vqvae", "precompute", "top_prior"]
    assert "top_prior failed" in capsys.readouterr().err
    code, ran, _ = run()
    assert ran == ["top_prior", "bottom_prior", "predict", "rollout", "eval"]


def test_other_output_folder_gets_rewritten_configs(run, tmp_path):
    out = tmp_path / "elsewhere"
    code, _, fake = run(out=out)
    assert code == 0
    config = out / "configs" / "vqvae.yaml"
    assert fake.ran[0][1][5] == str(config)
    assert demo.CONFIG_OUT not in config.read_text() and str(out) in config.read_text()
