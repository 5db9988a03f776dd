"""`vqvideo describe --config FILE [--json]`: size and cost of any stage's config, without weights or data.

The model of the YAML (`model.class_path` + `init_args`, the LightningCLI format) is built on the `meta`
device, so even the paper-scale config is described instantly. Every stage LightningModule implements the
describe hook (contracts.md):
- `module.core -> nn.Module`: the network whose parameters and FLOPs are counted;
- `module.example_inputs(batch_size=1) -> tuple[Tensor, ...]`: `module.core(*inputs)` is one forward pass;
- `module.describe_info() -> dict`: extra JSON fields (VQ-VAE: input_shape, top_shape, bottom_shape,
  bits_ratio).
FLOPs are counted by `torch.utils.flop_counter.FlopCounterMode` for one forward pass in eval mode
(1 multiply-add = 2 FLOPs), reported as `gflops_per_clip` (batch size 1).
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch.utils.flop_counter import FlopCounterMode


class DescribeError(ValueError):
    """The config cannot be described; the message names the file and the fix."""


def model_spec(config_path: Path) -> tuple[type, dict[str, Any]]:
    """The LightningModule class and init_args a stage YAML names (no CLI, no data, no trainer)."""
    if not config_path.is_file():
        raise DescribeError(f"{config_path}: no such config; pass a YAML such as experiments/demo/vqvae.yaml")
    config = OmegaConf.to_container(OmegaConf.load(config_path), resolve=True)
    model = (config or {}).get("model")
    if not isinstance(model, dict) or "class_path" not in model:
        raise DescribeError(f"{config_path}: needs a `model: {{class_path: ..., init_args: {{...}}}}` section")
    module_name, _, class_name = model["class_path"].rpartition(".")
    try:
        module_class = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise DescribeError(f"{config_path}: model.class_path {model['class_path']!r} cannot be imported ({err})")
    return module_class, dict(model.get("init_args") or {})


def describe_config(config_path: str | Path) -> dict[str, Any]:
    """Build the config's model on `meta` and return params, FLOPs and the module's describe_info()."""
    config_path = Path(config_path)
    module_class, init_args = model_spec(config_path)
    for hook in ("core", "example_inputs", "describe_info"):
        if not hasattr(module_class, hook):
            raise DescribeError(
                f"{config_path}: {module_class.__name__} lacks the describe hook `{hook}` (see contracts.md)"
            )
    with torch.device("meta"):
        module = module_class(**init_args)
        core = module.core.eval()
        inputs = module.example_inputs(batch_size=1)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            core(*inputs)
    return {
        "config": str(config_path),
        "model": f"{module_class.__module__}.{module_class.__name__}",
        "params": sum(p.numel() for p in core.parameters()),
        **module.describe_info(),
        "gflops_per_clip": counter.get_total_flops() / 1e9,
    }


def _human(info: dict[str, Any]) -> str:
    lines = []
    for key, value in info.items():
        if key == "params":
            value = f"{value:,} ({value / 1e6:.2f} M)"
        elif isinstance(value, float):
            value = f"{value:.4g}"
        lines.append(f"{key:>16}: {value}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vqvideo describe", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="a stage YAML, e.g. experiments/kinetics600_256/vqvae.yaml")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last stdout line")
    args = parser.parse_args(argv)
    try:
        info = describe_config(args.config)
    except DescribeError as err:
        parser.exit(2, f"vqvideo describe: {err}\n")
    print(json.dumps(info) if args.json else _human(info))
    return 0
