"""`vqvideo demo` orchestration with stand-in stages: order, reuse of finished stages, redo after a change,
`--fresh`, failures, and configs rewritten for another output folder. (The real pipeline is `make demo`.)"""

import json
from pathlib import Path

import pytest
import torch
import yaml

import vqvideo.commands.demo as demo
from vqvideo.data.sources import hash_split
from vqvideo.data.sprites import SpriteStyle, write_dataset
import vqvideo.lit.precision as precision
from vqvideo.lit.precision import PrecisionProbe, bf16_flags_in, time_bf16_against_float32

REPO = Path(__file__).resolve().parents[1]


class FakeStages:
    """Stands in for `subprocess.run`: records each stage and writes the output a real run would."""

    def __init__(self, out: Path, fail: str | None = None, time_cap: str | None = None):
        self.out, self.fail, self.time_cap, self.ran = out, fail, time_cap, []

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
            steps = 70 if stage == self.time_cap else 100
            (self.out / f"{stage}.steps.json").write_text(json.dumps(
                {"steps": steps, "max_steps": 100, "time_cap_hit": steps < 100, "seconds": 1.0}))
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


class FakeProbe:
    """Stands in for the bf16 timing: counts its calls, answers `speedup` (float32 ms / bf16 ms)."""

    def __init__(self, speedup: float = 1.4):
        self.speedup, self.calls = speedup, 0

    def __call__(self, loss, min_speedup: float = 1.1):
        self.calls += 1
        self.loss = loss
        probe = PrecisionProbe(float32_ms=10.0 * self.speedup, bf16_ms=10.0)
        return ("bf16-mixed" if probe.speedup >= min_speedup else "32-true"), probe


@pytest.fixture
def probe(monkeypatch):
    fake = FakeProbe()
    monkeypatch.setattr(demo, "cpu_training_precision", fake)
    monkeypatch.setattr(demo, "x86_bf16_flags", lambda: None)  # a CPU whose flags cannot be read: the timing decides
    return fake


@pytest.fixture
def run(monkeypatch, tmp_path, probe):
    monkeypatch.chdir(REPO)  # configs are found relative to the repository root

    def run_demo(*args, out=tmp_path / "demo", fail=None, time_cap=None):
        fake = FakeStages(out, fail, time_cap)
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


def test_a_folder_of_videos_sets_every_stage_on_it(run, tmp_path):
    videos = tmp_path / "videos"
    write_dataset(videos, 12, 0, SpriteStyle(size=32, num_frames=16, radius=(3.0, 6.0)))
    out = tmp_path / "on_folder"
    code, ran, fake = run(f"--data={videos}", out=out)
    assert code == 0 and ran == ALL
    for stage in ("vqvae", "precompute", "top_prior", "bottom_prior"):
        text = (out / "configs" / f"{stage}.yaml").read_text()
        data = yaml.safe_load(text)["data"]
        data = data.get("init_args") or data
        assert demo.CONFIG_OUT not in text
        assert data["root"] == str(videos) if stage in ("vqvae", "precompute") else "root" not in data
    held_out = sorted(path.name for path in (out / "held_out").iterdir())
    assert held_out and all(hash_split(name, 0.2) == "val" for name in held_out)
    assert f"--input={out / 'held_out'}" in fake.command_of("predict")
    assert f"--input={out / 'held_out'}" in fake.command_of("rollout")
    eval_command = fake.command_of("eval")
    assert f"--data.root={videos}" in eval_command and "--data.max_clips_per_video=1" in eval_command
    assert json.loads((out / "timings.json").read_text())["data"] == str(videos)


def test_a_time_cap_is_announced_and_recorded(run, tmp_path, capsys):
    code, _, _ = run(time_cap="top_prior")
    assert code == 0 and "WARNING: top_prior was stopped by its wall-clock cap at step 70 of 100" in capsys.readouterr().out
    stages = json.loads((tmp_path / "demo" / "timings.json").read_text())["stages"]
    assert stages["top_prior"]["time_cap_hit"] and stages["top_prior"]["steps"] == 70
    assert not stages["vqvae"]["time_cap_hit"] and stages["vqvae"]["steps"] == 100


def test_not_a_folder_of_videos_fails_with_the_fix(run, tmp_path, capsys):
    code, ran, _ = run(f"--data={tmp_path / 'missing'}", out=tmp_path / "x")
    assert code == 1 and ran == [] and "pass a folder of videos, 'sprites'" in capsys.readouterr().err


TRAINING = ("vqvae", "top_prior", "bottom_prior")


def precision_overrides(fake):
    return {stage: [part for part in command if part.startswith("--trainer.precision")]
            for stage, command in fake.ran if stage in TRAINING}


def test_bf16_faster_keeps_the_yamls_precision_and_records_the_measurement(run, probe, tmp_path, capsys):
    code, _, fake = run()
    assert code == 0 and probe.calls == 1
    assert precision_overrides(fake) == {stage: [] for stage in TRAINING}
    recorded = json.loads((tmp_path / "demo" / "timings.json").read_text())["precision"]
    assert recorded == {"choice": "bf16-mixed", "source": "measured", "vqvae_step_ms_float32": 14.0,
                        "vqvae_step_ms_bf16": 10.0, "bf16_speedup": 1.4}
    assert "training precision: bf16-mixed" in capsys.readouterr().out


def test_bf16_not_faster_trains_every_stage_in_float32(run, probe, tmp_path):
    probe.speedup = 1.05
    code, _, fake = run()
    assert code == 0
    assert precision_overrides(fake) == {stage: ["--trainer.precision=32-true"] for stage in TRAINING}
    assert json.loads((tmp_path / "demo" / "timings.json").read_text())["precision"]["choice"] == "32-true"


def test_no_probe_when_no_training_stage_runs_or_the_precision_is_given(run, probe, tmp_path):
    run()
    (tmp_path / "demo" / "eval" / "report.json").unlink()
    code, ran, _ = run()
    assert code == 0 and ran == ["eval"] and probe.calls == 1
    assert json.loads((tmp_path / "demo" / "timings.json").read_text())["precision"]["choice"] == "bf16-mixed"
    code, _, fake = run("--fresh", "--precision=bf16-mixed")
    assert code == 0 and probe.calls == 1
    assert precision_overrides(fake) == {stage: ["--trainer.precision=bf16-mixed"] for stage in TRAINING}


@pytest.mark.parametrize("flags, chosen, override", [(["avx512_bf16", "amx_bf16"], "bf16-mixed", []),
                                                     ([], "32-true", ["--trainer.precision=32-true"])])
def test_x86_cpu_flags_decide_without_timing(run, probe, monkeypatch, tmp_path, flags, chosen, override):
    """Where the flags can be read the choice cannot depend on the machine's load: no timing at all."""
    monkeypatch.setattr(demo, "x86_bf16_flags", lambda: flags)
    code, _, fake = run()
    assert code == 0 and probe.calls == 0
    assert precision_overrides(fake) == {stage: override for stage in TRAINING}
    recorded = json.loads((tmp_path / "demo" / "timings.json").read_text())["precision"]
    assert recorded == {"choice": chosen, "source": "cpu flags", "flags": flags}


def test_bf16_flags_are_read_from_the_flags_lines_only():
    cpuinfo = ("processor\t: 0\nmodel name\t: amx_bf16 in a name does not count\n"
               "flags\t\t: fpu sse2 avx512f amx_bf16 amx_tile avx512_bf16\n\nprocessor\t: 1\n"
               "flags\t\t: fpu sse2 avx512f amx_bf16 amx_tile avx512_bf16\n")
    assert bf16_flags_in(cpuinfo) == ["avx512_bf16", "amx_bf16"]
    assert bf16_flags_in("flags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n") == []


def test_x86_bf16_flags_reads_a_cpuinfo_file(tmp_path, monkeypatch):
    monkeypatch.setattr(precision.platform, "system", lambda: "Linux")
    monkeypatch.setattr(precision.platform, "machine", lambda: "x86_64")
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t\t: fpu avx512_bf16\n")
    assert precision.x86_bf16_flags(cpuinfo) == ["avx512_bf16"]
    assert precision.x86_bf16_flags(tmp_path / "missing") is None
    monkeypatch.setattr(precision.platform, "machine", lambda: "arm64")
    assert precision.x86_bf16_flags(cpuinfo) is None


def test_the_probe_times_the_demo_vqvae_training_step_in_both_precisions(monkeypatch):
    """The probe's step is the demo YAML's VQ-VAE on a batch of the YAML's shape; both precisions are timed."""
    monkeypatch.chdir(REPO)
    loss = demo.vqvae_training_loss(demo.config_for("vqvae", Path(demo.CONFIG_OUT)))
    value = loss()
    assert value.shape == () and value.dtype == torch.float32 and value.requires_grad
    calls = []

    def recording_loss():
        calls.append(torch.is_autocast_enabled("cpu"))
        return (torch.nn.functional.linear(torch.ones(2, 2), torch.ones(2, 2, requires_grad=True))).mean()

    probe = time_bf16_against_float32(recording_loss, repeats=2)
    assert calls == [False, True] * 3 and probe.float32_ms > 0 and probe.bf16_ms > 0


@pytest.mark.parametrize("stage", ["vqvae", "top_prior", "bottom_prior"])
def test_configs_rewritten_for_a_folder_parse_through_the_cli(monkeypatch, tmp_path, capsys, stage):
    from vqvideo.lit.cli import build_cli

    monkeypatch.chdir(REPO)
    config = demo.config_for(stage, tmp_path / "out", tmp_path / "videos")
    with pytest.raises(SystemExit) as exit_info:
        build_cli(["fit", "--config", str(config), "--print_config"])
    assert exit_info.value.code in (0, None)
    data = yaml.safe_load(capsys.readouterr().out)["data"]["init_args"]
    assert data.get("root") == (str(tmp_path / "videos") if stage == "vqvae" else None)
