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
(1 multiply-add = 2 FLOPs), reported as `gflops_per_clip` (batch size 1: one training sample; for the bottom prior
that is one slice, what a training step learns per clip).

`schedule` projects the YAML's training run: total PFLOPs = trainer.max_steps × global batch (data batch_size ×
trainer.devices × trainer.num_nodes) × gflops_per_clip × 3 (a backward pass costs about two forward passes), and
the GPU-days that takes at a stated model-FLOPs utilisation (`--mfu`, default 0.4) of a stated GPU's bf16 dense
tensor-core peak (`--gpu`, default H100). A projection, not a measurement: `make gpu-check` measures the MFU.
"""

from __future__ import annotations

import importlib
import inspect
import json
from pathlib import Path
from typing import Any, Literal

import torch
from jsonargparse import ActionYesNo, ArgumentParser
from omegaconf import OmegaConf
from torch.utils.flop_counter import FlopCounterMode

from vqvideo.cache.manifest import CacheError, code_spec_of
from vqvideo.models.vqvae import NUM_GIVEN_FRAMES

DATA_FACTS = ("clip_shape", "code_spec")
# bf16 dense tensor-core peaks in TFLOP/s (NVIDIA datasheets; the "with sparsity" figures are twice these). A key's
# "-"-separated words all appear in torch.cuda.get_device_name() of that GPU; more specific keys come first.
GPU_BF16_PEAK_TFLOPS = {"H100-PCIe": 756.0, "H100-NVL": 835.0, "H100": 989.0, "H200": 989.0, "A100": 312.0}
DEFAULT_GPU, DEFAULT_MFU = "H100", 0.4
SECONDS_PER_DAY = 86400.0


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


def forward_flops(module, batch_size: int = 1) -> float:
    """FLOPs of one eval-mode forward pass of `module.core` on `module.example_inputs(batch_size)`, counted on the
    `meta` device (the module must be on `meta`)."""
    with torch.device("meta"):
        core = module.core.eval()
        inputs = module.example_inputs(batch_size=batch_size)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            core(*inputs)
    return float(counter.get_total_flops())


def known_gpu_peak(device_name: str) -> tuple[str, float] | None:
    """(key, bf16 dense TFLOP/s) of GPU_BF16_PEAK_TFLOPS matching a torch.cuda.get_device_name(), or None."""
    name = device_name.upper()
    for key, tflops in GPU_BF16_PEAK_TFLOPS.items():
        if all(word.upper() in name for word in key.split("-")):
            return key, tflops
    return None


def device_count(devices: Any) -> tuple[int, str]:
    """trainer.devices as a number of GPUs, and how it was read (`auto`, -1: unknown here, counted as 1)."""
    if isinstance(devices, (list, tuple)):
        return len(devices), f"trainer.devices {list(devices)} = {len(devices)}"
    if isinstance(devices, int) or (isinstance(devices, str) and devices.isdigit()):
        if int(devices) > 0:
            return int(devices), f"trainer.devices {int(devices)}"
    return 1, f"trainer.devices {devices!r} counted as 1 (the GPUs of the machine it runs on: set it to project more)"


def training_schedule(config: dict, gflops_per_clip: float, gpu: str = DEFAULT_GPU, mfu: float = DEFAULT_MFU) -> dict:
    """The YAML's whole training run: total PFLOPs and GPU-days at `mfu` of `gpu`'s bf16 dense peak."""
    trainer = config.get("trainer") or {}
    max_steps = trainer.get("max_steps")
    batch_size = ((config.get("data") or {}).get("init_args") or {}).get("batch_size")
    if not isinstance(max_steps, int) or max_steps <= 0 or not isinstance(batch_size, int):
        return {"skipped": f"needs trainer.max_steps > 0 and data.init_args.batch_size (got {max_steps}, {batch_size})"}
    devices, devices_from = device_count(trainer.get("devices", 1))
    num_nodes = int(trainer.get("num_nodes") or 1)
    global_batch = batch_size * devices * num_nodes
    batch_from = f"data.init_args.batch_size {batch_size} × {devices_from} × trainer.num_nodes {num_nodes}"
    total_flops = max_steps * global_batch * gflops_per_clip * 1e9 * 3
    gpu_days = total_flops / (GPU_BF16_PEAK_TFLOPS[gpu] * 1e12 * mfu) / SECONDS_PER_DAY
    return {
        "max_steps": max_steps, "global_batch": global_batch, "global_batch_from": batch_from,
        "formula": "max_steps × global_batch × gflops_per_clip × 3 (forward + backward)",
        "total_pflops": total_flops / 1e15, "gpu": gpu, "gpu_bf16_dense_peak_tflops": GPU_BF16_PEAK_TFLOPS[gpu],
        "mfu": mfu, "gpu_days": gpu_days, "days_on_devices_x_nodes": gpu_days / (devices * num_nodes),
    }


def describe_config(config_path: str | Path, vqvae_config: str | Path | None = None, gpu: str = DEFAULT_GPU,
                    mfu: float = DEFAULT_MFU) -> dict[str, Any]:
    """Build the config's model on `meta` and return params, FLOPs, the module's describe_info() and the projected
    training schedule (`training_schedule`)."""
    config_path, provenance = Path(config_path), []
    module = build_module(config_path, Path(vqvae_config) if vqvae_config else None, provenance)
    gflops_per_clip = forward_flops(module) / 1e9
    return {
        "config": str(config_path),
        "model": f"{type(module).__module__}.{type(module).__name__}",
        "data_facts_from": provenance[0],
        "params": sum(p.numel() for p in module.core.parameters()),
        **module.describe_info(),
        "gflops_per_clip": gflops_per_clip,
        "schedule": training_schedule(load_yaml(config_path), gflops_per_clip, gpu, mfu),
    }


def _human(info: dict[str, Any]) -> str:
    lines = []
    for key, value in info.items():
        if key == "schedule":
            continue
        if key == "params":
            value = f"{value:,} ({value / 1e6:.2f} M)"
        elif isinstance(value, float):
            value = f"{value:.4g}"
        lines.append(f"{key:>16}: {value}")
    return "\n".join(lines + [_human_schedule(info["schedule"])])


def _human_schedule(schedule: dict[str, Any]) -> str:
    if "skipped" in schedule:
        return f"{'schedule':>16}: skipped, {schedule['skipped']}"
    return (f"{'schedule':>16}: {schedule['max_steps']:,} steps × global batch {schedule['global_batch']} "
            f"({schedule['global_batch_from']}) × GFLOPs per clip × 3 = {schedule['total_pflops']:,.0f} PFLOPs\n"
            f"{'':>16}  = {schedule['gpu_days']:,.3g} GPU-days on {schedule['gpu']} "
            f"({schedule['gpu_bf16_dense_peak_tflops']:g} TFLOP/s bf16 dense) at {schedule['mfu']:.0%} MFU "
            f"({schedule['days_on_devices_x_nodes']:,.3g} days on the config's devices × nodes; a projection)")


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="vqvideo describe", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=str, required=True,
                        help="a stage YAML, e.g. experiments/kinetics600_256/vqvae.yaml")
    parser.add_argument("--vqvae_config", type=str | None, default=None,
                        help="a prior's VQ-VAE YAML, used when its code cache does not exist yet (default: the "
                             "vqvae.yaml beside the prior's YAML)")
    parser.add_argument("--gpu", type=Literal[tuple(GPU_BF16_PEAK_TFLOPS)], default=DEFAULT_GPU,
                        help="GPU of the schedule projection (its bf16 dense peak: "
                             + ", ".join(f"{key} {value:g}" for key, value in GPU_BF16_PEAK_TFLOPS.items())
                             + " TFLOP/s)")
    parser.add_argument("--mfu", type=float, default=DEFAULT_MFU,
                        help="model-FLOPs utilisation assumed by the schedule projection, in (0, 1]")
    parser.add_argument("--json", action=ActionYesNo, default=False, help="end with one JSON object on stdout")
    args = parser.parse_args(argv)
    if not 0 < args.mfu <= 1:
        parser.exit(2, f"vqvideo describe: --mfu must be in (0, 1], got {args.mfu}\n")
    try:
        info = describe_config(args.config, args.vqvae_config, args.gpu, args.mfu)
    except (DescribeError, FileNotFoundError) as err:
        parser.exit(2, f"vqvideo describe: {err}\n")
    print(json.dumps(info) if args.json else _human(info))
    return 0
