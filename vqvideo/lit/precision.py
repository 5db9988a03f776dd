"""Whether bf16 autocast trains faster than float32 on this CPU: measured, not guessed.

bf16 autocast speeds up CPU training only where the CPU has bf16 dot-product instructions (x86 AVX512-BF16 or AMX,
Arm BF16 as on Apple M2 and later); elsewhere the bf16 kernels are emulated and can be much slower than float32.
The demo's VQ-VAE YAML asks for bf16-mixed. On x86 Linux, `vqvideo demo` reads the CPU's flags: bf16-mixed with
avx512_bf16 or amx_bf16 (which oneDNN's bf16 kernels use), 32-true without. The same machine then always trains
in the same precision, so two runs give the same numbers whatever else is running. Elsewhere (Apple silicon, Arm
Linux, Windows) it times the VQ-VAE's training step both ways and trains in 32-true where bf16 is not clearly
faster: a timing on a loaded machine can choose differently, which the demo records.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

BF16, FLOAT32 = "bf16-mixed", "32-true"
X86_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def bf16_flags_in(cpuinfo: str) -> list[str]:
    """The x86 bf16 instruction flags (X86_BF16_FLAGS) that a /proc/cpuinfo text lists, in that order."""
    listed = {word for line in cpuinfo.splitlines() if line.startswith("flags") for word in line.split()}
    return [flag for flag in X86_BF16_FLAGS if flag in listed]


def x86_bf16_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> list[str] | None:
    """This CPU's bf16 instruction flags on x86 Linux ([] = none); None where they cannot be read that way."""
    if platform.system() != "Linux" or platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    try:
        return bf16_flags_in(cpuinfo.read_text())
    except OSError:
        return None


@dataclass(frozen=True)
class PrecisionProbe:
    """Fastest wall time (ms) of one training step's forward + backward, float32 and under bf16 autocast."""

    float32_ms: float
    bf16_ms: float

    @property
    def speedup(self) -> float:
        return self.float32_ms / self.bf16_ms


def time_bf16_against_float32(loss: Callable[[], Tensor], repeats: int = 3) -> PrecisionProbe:
    """Times `loss().backward()` (loss: () float32 of one training batch) in float32 and under CPU bf16 autocast,
    alternating `repeats` times after one warm-up each; gradients accumulate and are never used.

    The fastest of the repeats, not the median: other work on the machine only adds time, and the median of 3 on
    a loaded 2-core machine once chose 32-true where the quiet machine measures bf16 2.2x faster, so the demo's
    numbers depended on what else was running."""

    def step_ms(bf16: bool) -> float:
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            value = loss()
        value.float().backward()
        return 1000 * (time.perf_counter() - start)

    step_ms(False), step_ms(True)
    times = {False: [], True: []}
    for _ in range(repeats):
        for bf16 in (False, True):
            times[bf16].append(step_ms(bf16))
    return PrecisionProbe(float32_ms=min(times[False]), bf16_ms=min(times[True]))


def cpu_training_precision(loss: Callable[[], Tensor], min_speedup: float = 1.1) -> tuple[str, PrecisionProbe]:
    """(BF16 or FLOAT32, the probe): bf16-mixed only where `loss`'s step measured `min_speedup` times faster."""
    probe = time_bf16_against_float32(loss)
    return (BF16 if probe.speedup >= min_speedup else FLOAT32), probe
