"""Stage YAMLs as objects: the one YAML reader of vqvideo, and a stage's LightningModule built from its YAML.

A YAML is read the way `vqvideo fit` (LightningCLI with `parser_mode="omegaconf"`) reads it: OmegaConf, with
interpolations resolved. The model of a YAML (`model.class_path` + `init_args`, the LightningCLI format) is built
with the facts `vqvideo fit` links from the data (`DATA_FACTS`): the YAML's DataModule is built and asked for them.
A prior's code cache usually does not exist yet when one plans a run; its facts then come from the experiment's
VQ-VAE config (`vqvae.yaml` beside the prior's YAML) exactly as `vqvideo precompute` would derive them.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from vqvideo.cache.manifest import CacheError, code_spec_of
from vqvideo.models.vqvae import NUM_GIVEN_FRAMES, VQVAE, VQVAEConfig

# DataModule properties linked into the model's __init__ arguments of the same name (`link_arguments`)
DATA_FACTS = ("clip_shape", "code_spec")


class ConfigError(ValueError):
    """The config cannot be read or built; the message names the file and the fix."""


def read_yaml(config_path: str | Path) -> dict[str, Any]:
    """A YAML file as plain containers, interpolations resolved (an empty file: {})."""
    config_path = Path(config_path)
    if not config_path.is_file():
        raise ConfigError(f"{config_path}: no such config; pass a YAML such as experiments/demo/vqvae.yaml")
    return OmegaConf.to_container(OmegaConf.load(config_path), resolve=True) or {}


def parse_yaml(text: str) -> dict[str, Any]:
    """YAML text as plain containers, read as `read_yaml` reads a file."""
    return OmegaConf.to_container(OmegaConf.create(text), resolve=True) or {}


def dump_yaml(settings: dict[str, Any]) -> str:
    """Plain containers as YAML text, keys in their order."""
    return OmegaConf.to_yaml(OmegaConf.create(settings))


def class_and_args(config_path: Path, section: dict | None, key: str) -> tuple[type, dict[str, Any]]:
    """The class and init_args a YAML section (`model` or `data`) names."""
    if not isinstance(section, dict) or "class_path" not in section:
        raise ConfigError(f"{config_path}: needs a `{key}: {{class_path: ..., init_args: {{...}}}}` section")
    module_name, _, class_name = section["class_path"].rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), class_name), dict(section.get("init_args") or {})
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"{config_path}: {key}.class_path {section['class_path']!r} cannot be imported ({err})")


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
    num_given = read_yaml(precompute).get("num_given_frames", NUM_GIVEN_FRAMES) if precompute.is_file() else None
    return code_spec_of(module.core, module.clip_shape, num_given or NUM_GIVEN_FRAMES)


def build_module(config_path: Path, vqvae_config: Path | None = None, provenance: list | None = None,
                 device: str = "meta"):
    """The config's LightningModule (default on the `meta` device: no memory, no weights), with the data's facts
    linked in as `vqvideo fit` does. It must implement the describe hook (`core`, `example_inputs`,
    `describe_info`); `provenance` (a list) receives where the data facts came from."""
    config = read_yaml(config_path)
    module_class, init_args = class_and_args(config_path, config.get("model"), "model")
    for hook in ("core", "example_inputs", "describe_info"):
        if not hasattr(module_class, hook):
            raise ConfigError(f"{config_path}: {module_class.__name__} lacks the describe hook `{hook}`")
    wanted = [name for name in DATA_FACTS if name in inspect.signature(module_class).parameters]
    facts, source = data_facts(config_path, config, wanted, vqvae_config)
    if provenance is not None:
        provenance.append(source)
    with torch.device(device):
        return module_class(**init_args, **facts)


def vqvae_and_batch(config: Path) -> tuple[VQVAE, torch.Tensor]:
    """The VQ-VAE of `config` (a fit YAML) in training mode, and one random (B, 3, T, H, W) float32 batch in [-1, 1]
    of its training shape."""
    settings = read_yaml(config)
    data = settings["data"]["init_args"]
    vqvae = VQVAE(VQVAEConfig(**settings["model"]["init_args"]["vqvae"])).train()
    size = (data["batch_size"], 3, data["num_frames"], data["resolution"], data["resolution"])
    return vqvae, torch.rand(size, generator=torch.Generator().manual_seed(0)) * 2 - 1
