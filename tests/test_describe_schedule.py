"""`vqvideo describe`'s schedule projection: PFLOPs and GPU-days of a YAML's whole training run, checked by hand
against the paper configs' own numbers (Table 4: 1 016 000 steps, 8 GPUs × 64 clips; the bottom prior's
`devices: auto`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vqvideo.commands.describe import main
from vqvideo.lit.describe import GPU_BF16_PEAK_TFLOPS, device_count, known_gpu_peak, training_schedule

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "experiments/kinetics600_256"


def describe_json(capsys, *args: str) -> dict:
    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_top_prior_schedule_arithmetic(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no code cache: latent facts from the paper's vqvae.yaml
    info = describe_json(capsys, "--config", str(PAPER / "top_prior.yaml"), "--gpu", "A100", "--mfu", "0.5")
    schedule = info["schedule"]
    assert schedule["max_steps"] == 1_016_000 and schedule["global_batch"] == 64 * 8 * 1
    assert "batch_size 64" in schedule["global_batch_from"] and "trainer.devices 8" in schedule["global_batch_from"]
    total_flops = 1_016_000 * 512 * info["gflops_per_clip"] * 1e9 * 3
    assert schedule["total_pflops"] == pytest.approx(total_flops / 1e15)
    assert schedule["gpu_bf16_dense_peak_tflops"] == 312.0 and schedule["mfu"] == 0.5
    assert schedule["gpu_days"] == pytest.approx(total_flops / (312e12 * 0.5) / 86400)
    assert schedule["days_on_devices_x_nodes"] == pytest.approx(schedule["gpu_days"] / 8)
    assert 7000 < info["gflops_per_clip"] < 8000  # ~2 × 1.2 B parameters × 3 072 positions


def test_defaults_are_h100_at_40_percent_and_auto_devices_count_as_one(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    info = describe_json(capsys, "--config", str(PAPER / "bottom_prior.yaml"))
    schedule = info["schedule"]
    assert schedule["gpu"] == "H100" and schedule["mfu"] == 0.4
    assert schedule["global_batch"] == 32 and "'auto' counted as 1" in schedule["global_batch_from"]
    expected_days = 950_000 * 32 * info["gflops_per_clip"] * 1e9 * 3 / (989e12 * 0.4) / 86400
    assert schedule["gpu_days"] == pytest.approx(expected_days)


def test_human_output_states_the_projection(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert main(["--config", str(PAPER / "vqvae.yaml")]) == 0
    out = capsys.readouterr().out
    assert "1,000,000 steps × global batch 16" in out and "GPU-days on H100" in out and "40% MFU" in out


def test_bad_mfu_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["--config", str(PAPER / "vqvae.yaml"), "--mfu", "40"])
    assert "--mfu must be in (0, 1]" in capsys.readouterr().err


def test_schedule_needs_steps_and_batch():
    assert "skipped" in training_schedule({"trainer": {"max_steps": -1}, "data": {"init_args": {"batch_size": 4}}}, 1.0)
    assert "skipped" in training_schedule({"trainer": {"max_steps": 10}}, 1.0)


def test_device_counts_and_gpu_names():
    assert device_count(4)[0] == 4 and device_count([0, 1])[0] == 2 and device_count("2")[0] == 2
    assert device_count("auto")[0] == 1 and device_count(-1)[0] == 1
    assert known_gpu_peak("NVIDIA H100 80GB HBM3") == ("H100", 989.0)
    assert known_gpu_peak("NVIDIA H100 PCIe") == ("H100-PCIe", 756.0)
    assert known_gpu_peak("NVIDIA H200") == ("H200", 989.0)
    assert known_gpu_peak("NVIDIA A100-SXM4-80GB") == ("A100", 312.0)
    assert known_gpu_peak("NVIDIA GeForce RTX 4090") is None
    assert set(GPU_BF16_PEAK_TFLOPS) >= {"H100", "H200", "A100"}
