"""`vqvideo describe`: paper-config numbers (§1, §3.1) and clear errors; every VQ-VAE YAML parses via the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vqvideo.describe import main

ROOT = Path(__file__).resolve().parents[1]
VQVAE_CONFIGS = sorted((ROOT / "experiments").glob("*/vqvae.yaml"))


def run_json(capsys, config: Path) -> dict:
    assert main(["--config", str(config), "--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_paper_config_json(capsys):
    info = run_json(capsys, ROOT / "experiments/kinetics600_256/vqvae.yaml")
    assert info["input_shape"] == [3, 16, 256, 256]
    assert info["top_shape"] == [4, 32, 32] and info["bottom_shape"] == [8, 64, 64]
    assert info["bits_ratio"] == pytest.approx(0.0132, abs=5e-4)  # §1: "1.3% of the bits"
    assert 1e6 < info["params"] < 2e7 and info["gflops_per_clip"] > 10


def test_human_output_and_errors(capsys, tmp_path):
    assert main(["--config", str(ROOT / "experiments/demo/vqvae.yaml")]) == 0
    assert "bottom_shape: [8, 16, 16]" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--config", str(tmp_path / "missing.yaml")])
    assert "no such config" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  class_path: torch.nn.Linear\n  init_args: {in_features: 2, out_features: 2}\n")
    with pytest.raises(SystemExit):
        main(["--config", str(bad)])
    assert "describe hook" in capsys.readouterr().err


@pytest.mark.parametrize("config", VQVAE_CONFIGS, ids=lambda p: p.parent.name)
def test_vqvae_yaml_parses_through_the_cli(config):
    from vqvideo.lit.cli import build_cli

    with pytest.raises(SystemExit) as exit_info:  # --print_config validates every key, then exits 0
        build_cli(["fit", "--config", str(config), "--print_config"])
    assert exit_info.value.code in (0, None)
