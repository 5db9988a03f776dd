"""`vqvideo describe`: paper-config numbers (§1, §3.1), clear errors, every experiment config (bench included) with
its data facts from the DataModule or, for a prior without a code cache, from the VQ-VAE config beside it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vqvideo.commands.describe import main
from vqvideo.lit.configs import read_yaml

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


LIGHTNING_CONFIGS = sorted(p for p in (ROOT / "experiments").rglob("*.yaml") if "model:" in p.read_text())


@pytest.mark.parametrize("config", LIGHTNING_CONFIGS, ids=lambda p: p.relative_to(ROOT / "experiments").as_posix())
def test_describe_works_on_every_config(config, capsys, monkeypatch, tmp_path):
    """Run where no code cache exists: a prior's latent facts then come from the VQ-VAE config beside it."""
    monkeypatch.chdir(tmp_path)
    info = run_json(capsys, config)
    assert info["model"] == read_yaml(config)["model"]["class_path"]
    assert info["params"] > 0 and info["gflops_per_clip"] > 0
    if config.stem == "vqvae":
        assert info["data_facts_from"] == f"the DataModule of {config}"
    else:
        assert info["data_facts_from"] == f"{config.with_name('vqvae.yaml')} (no code cache yet)"
    expected = {"bench/top_prior.yaml": [3, 32, 32], "kinetics600_256/top_prior.yaml": [3, 32, 32],
                "demo/top_prior.yaml": [3, 8, 8]}
    name = config.relative_to(ROOT / "experiments").as_posix()
    if name in expected:
        assert info["predicted_shape"] == expected[name]
    if name == "bench/bottom_prior.yaml":
        assert info["bottom_shape"] == [8, 64, 64] and info["attention_after_layers"] == [5, 10, 15, 20]


def test_a_priors_vqvae_config_can_be_named(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    prior = ROOT / "experiments/demo/top_prior.yaml"
    assert main(["--config", str(prior), "--vqvae_config", str(ROOT / "experiments/kinetics600_256/vqvae.yaml"),
                 "--json"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["predicted_shape"] == [3, 32, 32] and "kinetics600_256/vqvae.yaml" in info["data_facts_from"]
