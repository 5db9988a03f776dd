"""`vqvideo describe --config FILE [--json]`: size and cost of any stage's config, without weights or data.

A prior's code cache usually does not exist yet when one plans a run; its facts then come from the experiment's
VQ-VAE config (`vqvae.yaml` beside the prior's YAML, or `--vqvae_config`) and the output says which source was used.
What is counted and how the schedule is projected: `vqvideo.lit.describe`.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from jsonargparse import ActionYesNo, ArgumentParser

from vqvideo.lit.configs import ConfigError
from vqvideo.lit.describe import DEFAULT_GPU, DEFAULT_MFU, GPU_BF16_PEAK_TFLOPS, describe_config


def build_parser() -> ArgumentParser:
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
    return parser


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
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0 < args.mfu <= 1:
        parser.exit(2, f"vqvideo describe: --mfu must be in (0, 1], got {args.mfu}\n")
    try:
        info = describe_config(args.config, args.vqvae_config, args.gpu, args.mfu)
    except (ConfigError, FileNotFoundError) as err:
        parser.exit(2, f"vqvideo describe: {err}\n")
    print(json.dumps(info) if args.json else _human(info))
    return 0
