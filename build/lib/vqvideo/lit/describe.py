"""The size and cost of a stage's config, without weights or data (the library of `vqvideo describe`).

The config's model is built on the `meta` device (`vqvideo.lit.configs.build_module`, with the data's facts linked
in as `vqvideo fit` does), so even the paper-scale config is described instantly.

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

from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from vqvideo.lit.configs import build_module, read_yaml

# bf16 dense tensor-core peaks in TFLOP/s (NVIDIA datasheets; the "with sparsity" figures are twice these). A key's
# "-"-separated words all appear in torch.cuda.get_device_name() of that GPU; more specific keys come first.
GPU_BF16_PEAK_TFLOPS = {"H100-PCIe": 756.0, "H100-NVL": 835.0, "H100": 989.0, "H200": 989.0, "A100": 312.0}
DEFAULT_GPU, DEFAULT_MFU = "H100", 0.4
SECONDS_PER_DAY = 86400.0


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
        "schedule": training_schedule(read_yaml(config_path), gflops_per_clip, gpu, mfu),
    }
