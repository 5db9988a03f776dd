"""A stage YAML's training step, measured: step time, peak memory, FLOP/s and MFU (for benchmarks/gpu_check.py).

The stage module is built from its YAML by `vqvideo.lit.configs.build_module` directly on the device (the latent facts
linked as `vqvideo fit` links them), given a synthetic batch with the shapes and dtypes its DataModule yields
(clips (B, 3, T, H, W) float in [-1, 1] for the VQ-VAE; int64 codes and slice indices for the priors), and stepped
with its own `training_step` (the loss Lightning runs), backward, and the AdamW of its `optimization` settings;
under `torch.autocast(dtype)` when a dtype is given, as Lightning's bf16-mixed precision does (weights stay float32).
- step time: median of the timed steps after the warm-up ones (CUDA synchronised around each step);
- peak memory: `torch.cuda.max_memory_allocated`, reset when the batch size is set (weights, gradients, AdamW
  state and activations); None on CPU;
- FLOPs: `vqvideo describe`'s FlopCounterMode count of one forward pass per clip; a training step is counted as
  3 forward passes (forward + backward), so achieved FLOP/s = 3 × FLOPs per clip × batch / step time;
- MFU: achieved FLOP/s ÷ the device's peak (`device_peak`).
A batch that runs out of CUDA memory is recorded and halved (at most `MAX_HALVINGS` times).
"""

from __future__ import annotations

import contextlib
import gc
import statistics
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from vqvideo.lit.configs import build_module, read_yaml
from vqvideo.lit.describe import describe_config, known_gpu_peak
from vqvideo.lit.optimization import configure_optimization
from vqvideo.lit.top_prior_module import TopPriorModule
from vqvideo.lit.vqvae_module import VQVAEModule

MAX_HALVINGS = 3
NO_TRAINER_LOG = r".*self\.log\(\)` but the `self\.trainer` reference is not registered.*"


@dataclass
class StepCost:
    """One stage's training step at `batch_size` (the largest that fitted; `oom_batch_sizes` did not)."""

    batch_size: int
    step_s: float
    first_step_s: float  # includes one-time costs: kernel selection, AdamW state, compilation
    peak_memory_bytes: int | None
    flops_per_clip: float
    oom_batch_sizes: list[int] = field(default_factory=list)

    @property
    def flops_per_second(self) -> float:
        return 3 * self.flops_per_clip * self.batch_size / self.step_s


def is_out_of_memory(error: Exception) -> bool:
    """CUDA OOM, also as cuDNN/cuBLAS report it when their workspace cannot be allocated."""
    text = str(error)
    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in text or "ALLOC_FAILED" in text


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def synthetic_batch(module, batch_size: int, device: torch.device, seed: int = 0) -> dict[str, torch.Tensor]:
    """A batch as the stage's DataModule yields it, random values, on `device`."""
    generator = torch.Generator().manual_seed(seed)
    if isinstance(module, VQVAEModule):
        clips = torch.rand((batch_size, 3, *module.clip_shape), generator=generator) * 2 - 1
        return {"video": clips.to(device)}

    def codes(shape, num_codes: int) -> torch.Tensor:
        return torch.randint(num_codes, (batch_size, *shape), generator=generator).to(device)

    spec = module.code_spec
    if isinstance(module, TopPriorModule):
        future = (spec.num_future_top_slices, *spec.top_shape[1:])
        return {"given_top": codes(spec.given_top_shape, spec.num_top_codes),
                "given_bottom": codes(spec.given_bottom_shape, spec.num_bottom_codes),
                "target_top": codes(future, spec.num_top_codes)}
    slices = torch.randint(spec.given_bottom_shape[0], spec.bottom_shape[0], (batch_size,), generator=generator)
    return {"top_codes": codes(spec.top_shape, spec.num_top_codes),
            "bottom_codes": codes(spec.bottom_shape, spec.num_bottom_codes), "slice_index": slices.to(device)}


def stage_optimizer(module) -> torch.optim.Optimizer:
    """The AdamW the stage's configure_optimizers builds (its learning-rate schedule does not matter for a step)."""
    config = replace(module.optimization, lr_total_steps=module.optimization.warmup_steps + 1)
    return configure_optimization(module.core.parameters(), config, trainer=None)["optimizer"]


def training_step(module, batch: dict, optimizer, autocast_dtype: torch.dtype | None) -> None:
    device_type = next(module.parameters()).device.type
    precision = torch.autocast(device_type, dtype=autocast_dtype) if autocast_dtype else contextlib.nullcontext()
    with precision:
        loss = module.training_step(batch, 0)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def timed_steps(module, optimizer, batch_size: int, autocast_dtype, num_steps: int) -> tuple[list[float], int | None]:
    """Seconds of each of num_steps training steps on one synthetic batch, and the peak memory meanwhile (CUDA)."""
    device = next(module.parameters()).device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    batch, seconds = synthetic_batch(module, batch_size, device), []
    for _ in range(num_steps):
        synchronize(device)
        start = time.perf_counter()
        training_step(module, batch, optimizer, autocast_dtype)
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    return seconds, torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None


def measure_stage(config: Path, device: torch.device, autocast_dtype, warmup: int, timed: int,
                  batch_size: int | None = None, compile_core: bool = False) -> StepCost:
    """Train steps of the stage of `config` at its YAML batch size (or `batch_size`), halving it on CUDA OOM."""
    flops_per_clip = describe_config(config)["gflops_per_clip"] * 1e9
    batch_size = batch_size or describe_batch_size(config)
    free_memory(device)
    module = build_module(config, device=str(device)).train()
    if compile_core:
        module.core.compile()  # nn.Module.compile: in place, so training_step runs the compiled network
    optimizer, ooms = stage_optimizer(module), []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=NO_TRAINER_LOG)
        for size in [batch_size // 2**k for k in range(MAX_HALVINGS + 1) if batch_size // 2**k >= 1]:
            try:
                seconds, peak = timed_steps(module, optimizer, size, autocast_dtype, warmup + timed)
                return StepCost(size, statistics.median(seconds[warmup:]), seconds[0], peak, flops_per_clip, ooms)
            except RuntimeError as error:  # torch.cuda.OutOfMemoryError is one
                if not is_out_of_memory(error):
                    raise
                ooms.append(size)
            optimizer.zero_grad(set_to_none=True)
            free_memory(device)
    raise torch.cuda.OutOfMemoryError(f"out of memory at every batch size tried: {ooms}")


def describe_batch_size(config: Path) -> int:
    """The per-device batch size of a stage YAML (data.init_args.batch_size)."""
    return int(read_yaml(config)["data"]["init_args"]["batch_size"])


def matmul_flops(device: torch.device, dtype: torch.dtype, size: int, repeats: int) -> float:
    """Measured FLOP/s of a square matmul (2 size³ FLOPs each), after one warm-up."""
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    a @ b
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def device_peak(device: torch.device) -> tuple[float, str]:
    """(peak FLOP/s, where it comes from): a known GPU's bf16 dense datasheet peak, else a measured matmul (bf16
    on CUDA, float32 on CPU: the dtype the steps mostly run in)."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        known = known_gpu_peak(name)
        if known:
            return known[1] * 1e12, f"{name}: {known[0]} bf16 dense datasheet peak, {known[1]:g} TFLOP/s"
        return matmul_flops(device, torch.bfloat16, 8192, 20), f"{name}: measured bf16 matmul 8192³ (not in the table)"
    threads = torch.get_num_threads()
    return matmul_flops(device, torch.float32, 1024, 5), f"CPU: measured float32 matmul 1024³, {threads} thread(s)"
