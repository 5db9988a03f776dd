"""`vqvideo describe --config FILE [--json]`: size and cost of any stage's config, without weights or data.

The model of the YAML (`model.class_path` + `init_args`, the LightningCLI format) is built on the `meta` device, so
even the paper-scale config is described instantly. The facts `vqvideo fit` links from the data are taken the same
way: the YAML's DataModule is built and asked for them (`clip_shape`, `code_spec`). A prior's code cache usually
does not exist yet when one plans a run; its facts then come from the experiment's VQ-VAE config (`vqvae.yaml`
beside the prior's YAML, or `--vqvae_config`) exactly as `vqvideo precompute` would derive them, and the output
says which source was used.

Every stage LightningModule implements the describe hook:
- `module.core -> nn.Module`: the network whose parameters and FLOPs are counted;
- `module.example_inputs(batch_size=1) -> tuple[Tensor, ...]`: `module.core(*inputs)` is one forward pass;
- `module.describe_info() -> dict`: extra JSON fields (VQ-VAE: input_shape, top_shape, bottom_shape, bits_ratio).
FLOPs are counted by `torch.utils.flop_counter.FlopCounterMode` for one forward pass in eval mode
(1 multiply-add = 2 FLOPs), reported as `gflops_per_clip` (batch size 1).
"""

from __future__ import annotations

import importlib
import inspect
import json
from pathlib import Path
from typing import Any

import torch
from jsonargparse import ActionYesNo, ArgumentParser
from omegaconf import OmegaConf
from torch.utils.flop_counter import FlopCounterMode

from vqvideo.cache.manifest import CacheError, code_spec_of
from vqvideo.models.vqvae import NUM_GIVEN_FRAMES

DATA_FACTS = ("clip_shape", "code_spec")


class DescribeError(ValueError):
    """The config cannot be described; the message names the file and the fix."""


def load_yaml(config_path: Path) -> dict[str, Any]:
    if not config_path.is_file():
        raise DescribeError(f"{config_path}: no such config; pass a YAML such as experiments/demo/vqvae.yaml")
    return OmegaConf.to_container(OmegaConf.load(config_path), resolve=True) or {}


def class_and_args(config_path: Path, section: dict | None, key: str) -> tuple[type, dict[str, Any]]:
    """The class and init_args a YAML section (`model` or `data`) names."""
    if not isinstance(section, dict) or "class_path" not in section:
        raise DescribeError(f"{config_path}: needs a `{key}: {{class_path: ..., init_args: {{...}}}}` section")
    module_name, _, class_name = section["class_path"].rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), class_name), dict(section.get("init_args") or {})
    except (ImportError, AttributeError) as err:
        raise DescribeError(f"{config_path}: {key}.class_path {section['class_path']!r} cannot be imported ({err})")


def data_facts(config_path: Path, config: dict, wanted: list[str], vqvae_config: Path | None) -> tuple[dict, str]:
    """The facts the model takes from its DataModule, and where they came from."""
    if not wanted:
        return {}, "none needed"
    data_class, data_args = class_and_args(config_path, config.get("data"), "data")
    datamodule = data_class(**data_args)
    try:
        return {name: getattr(datamodule, name) for name in wanted}, f"the DataModule of {config_path}"
    except CacheError:
        vqvae_config = vqvae_config or config_path.with_name("vqvae.yaml")
        return {"code_spec": planned_code_spec(vqvae_config)}, f"{vqvae_config} (no code cache yet)"


def planned_code_spec(vqvae_config: Path):
    """The code_spec `vqvideo precompute` would record for the VQ-VAE of `vqvae_config`."""
    module = build_module(vqvae_config)
    precompute = vqvae_config.with_name("precompute.yaml")
    num_given = load_yaml(precompute).get("num_given_frames", NUM_GIVEN_FRAMES) if precompute.is_file() else None
    return code_spec_of(module.core, module.clip_shape, num_given or NUM_GIVEN_FRAMES)


def build_module(config_path: Path, vqvae_config: Path | None = None, provenance: list | None = None,
                 device: str = "meta"):
    """The config's LightningModule (on the `meta` device: no memory, no weights), with the data's facts linked in
    as `vqvideo fit` does."""
    config = load_yaml(config_path)
    module_class, init_args = class_and_args(config_path, config.get("model"), "model")
    for hook in ("core", "example_inputs", "describe_info"):
        if not hasattr(module_class, hook):
            raise DescribeError(f"{config_path}: {module_class.__name__} lacks the describe hook `{hook}`")
    wanted = [name for name in DATA_FACTS if name in inspect.signature(module_class).parameters]
    facts, source = data_facts(config_path, config, wanted, vqvae_config)
    if provenance is not None:
        provenance.append(source)
    with torch.device(device):
        return module_class(**init_args, **facts)


def describe_config(config_path: str | Path, vqvae_config: str | Path | None = None) -> dict[str, Any]:
    """Build the config's model on `meta` and return params, FLOPs and the module's describe_info()."""
    config_path, provenance = Path(config_path), []
    module = build_module(config_path, Path(vqvae_config) if vqvae_config else None, provenance)
    with torch.device("meta"):
        core = module.core.eval()
        inputs = module.example_inputs(batch_size=1)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            core(*inputs)
    return {
        "config": str(config_path),
        "model": f"{type(module).__module__}.{type(module).__name__}",
        "data_facts_from": provenance[0],
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
    parser = ArgumentParser(prog="vqvideo describe", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=str, required=True,
                        help="a stage YAML, e.g. experiments/kinetics600_256/vqvae.yaml")
    parser.add_argument("--vqvae_config", type=str | None, default=None,
                        help="a prior's VQ-VAE YAML, used when its code cache does not exist yet (default: the "
                             "vqvae.yaml beside the prior's YAML)")
    parser.add_argument("--json", action=ActionYesNo, default=False, help="end with one JSON object on stdout")
    args = parser.parse_args(argv)
    try:
        info = describe_config(args.config, args.vqvae_config)
    except (DescribeError, FileNotFoundError) as err:
        parser.exit(2, f"vqvideo describe: {err}\n")
    print(json.dumps(info) if args.json else _human(info))
    return 0
