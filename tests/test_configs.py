"""Every experiment YAML parses through the same LightningCLI users run (`vqvideo fit --config ...`)."""

from pathlib import Path

import pytest
import yaml

from vqvideo.lit.cli import build_cli
from vqvideo.lit.configs import read_yaml

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
LIGHTNING_CONFIGS = sorted(
    p for p in EXPERIMENTS.rglob("*.yaml") if "model" in read_yaml(p)
)


def test_every_stage_has_paper_and_demo_configs():
    names = {p.relative_to(EXPERIMENTS).as_posix() for p in LIGHTNING_CONFIGS}
    for stage in ("vqvae", "top_prior", "bottom_prior"):
        for experiment in ("kinetics600_256", "kinetics600_64", "demo"):
            assert f"{experiment}/{stage}.yaml" in names


@pytest.mark.parametrize("config", LIGHTNING_CONFIGS, ids=lambda p: p.relative_to(EXPERIMENTS).as_posix())
def test_config_parses_through_cli(config, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_cli(["fit", "--config", str(config), "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["class_path"].startswith("vqvideo.")
    assert printed["data"]["class_path"].startswith("vqvideo.")
