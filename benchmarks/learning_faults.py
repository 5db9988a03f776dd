"""Does "samples beat copy-last" catch a broken pipeline? (issue 23: the sprites learning check must fail with each
fault patched in.)

On a finished demo's VQ-VAE and code cache (`make demo DATA=sprites` → outputs/sprites), this retrains the two
priors and re-evaluates once per fault, the fault patched in by monkeypatching for training *and* sampling, as a
real bug would be, and prints the samples' PSNR over the predicted frames beside copy-last for each:

  none               the pipeline as it is (the check must pass here)
  splice             the given codes spliced in mirrored (left-right) before sampling
  mask_leak          the PixelCNN's first (mask A) layer reads the code it predicts
  mask_blind         every masked convolution reads nothing of the present slice
  window_off_by_one  the bottom prior's past-slice window is n-w+1 .. n (it reads the slice it predicts)
  no_conditioning    the top prior's conditioning stack (the given frames' codes) outputs zeros

  python benchmarks/learning_faults.py --demo outputs/sprites [--faults none,splice] [--top_steps 100]

With `--faults none` and more steps it measures what longer prior training gives the same VQ-VAE, e.g.
  python benchmarks/learning_faults.py --faults none --top_steps 3000 --bottom_steps 3000 --num_samples 4 \
    --top_args="--trainer.val_check_interval=150" \
    --bottom_args="--trainer.val_check_interval=150 --model.init_args.optimization.lr_total_steps=null"

Writes <demo>/faults/<fault>/ (checkpoints, eval) and <demo>/faults/summary.json. A fault passes the check when
samples beat copy-last by `--margin` dB; the check is useful when `none` passes and every fault fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
from pathlib import Path
from unittest import mock

import torch

from vqvideo.cli import main as cli_main
from vqvideo.models import bottom_conditioning, pixelcnn, top_conditioning
from vqvideo.sampling import pipeline
from vqvideo.models.vqvae import Codes

ORIGINAL_MASK = pixelcnn.CausalMaskedConv3d._present_slice_mask
ORIGINAL_SAMPLE_CODES = pipeline.sample_codes
ORIGINAL_TOP_COND = top_conditioning.TopConditioningStack.forward


def mirrored_splice(models, given_codes: Codes, *args, **kwargs):
    mirrored = Codes(given_codes.top.flip(-1), given_codes.bottom.flip(-1))
    return ORIGINAL_SAMPLE_CODES(models, mirrored, *args, **kwargs)


def leaking_mask(kernel_size, stack, include_current):
    return ORIGINAL_MASK(kernel_size, stack, True)


def blind_mask(kernel_size, stack, include_current):
    mask = ORIGINAL_MASK(kernel_size, stack, include_current)
    mask[:, :, -1] = 0
    return mask


def window_with_present(self, bottom_codes: torch.Tensor, slice_index: torch.Tensor) -> torch.Tensor:
    """PastSliceEncoder.window_embedding shifted by one: slices n-w+1 .. n."""
    from einops import rearrange

    embedded = self.embedding(bottom_codes)
    indices = slice_index[:, None] + torch.arange(-self.window + 1, 1, device=slice_index.device)
    batch = torch.arange(len(slice_index), device=slice_index.device)[:, None]
    window = embedded[batch, indices.clamp(min=0, max=bottom_codes.shape[1] - 1)]
    window = torch.where((indices < 0)[:, :, None, None, None], self.no_slice, window)
    return rearrange(window, "b t h w c -> b c t h w")


def dropped_conditioning(self, given_top, given_bottom, num_slices):
    return ORIGINAL_TOP_COND(self, given_top, given_bottom, num_slices) * 0


FAULTS = {
    "none": lambda: contextlib.nullcontext(),
    "splice": lambda: mock.patch.object(pipeline, "sample_codes", mirrored_splice),
    "mask_leak": lambda: mock.patch.object(pixelcnn.CausalMaskedConv3d, "_present_slice_mask",
                                           staticmethod(leaking_mask)),
    "mask_blind": lambda: mock.patch.object(pixelcnn.CausalMaskedConv3d, "_present_slice_mask",
                                            staticmethod(blind_mask)),
    "window_off_by_one": lambda: mock.patch.object(bottom_conditioning.PastSliceEncoder, "window_embedding",
                                                   window_with_present),
    "no_conditioning": lambda: mock.patch.object(top_conditioning.TopConditioningStack, "forward",
                                                 dropped_conditioning),
}


def fault_config(demo: Path, stage: str, work: Path) -> Path:
    """The demo's <stage>.yaml with its outputs moved to `work`, still reading the demo's code cache."""
    source = demo / "configs" / f"{stage}.yaml"
    written_for = demo  # the folder the config's paths name: the demo's, or outputs/demo in experiments/demo
    if not source.is_file():
        source, written_for = Path("experiments/demo") / f"{stage}.yaml", Path("outputs/demo")
    text = source.read_text().replace(str(written_for / "codes"), "@CODES@").replace(str(written_for), str(work))
    path = work / "configs" / f"{stage}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.replace("@CODES@", str(demo / "codes")))
    return path


def run_command(argv: list[str]) -> None:
    code = cli_main(argv)
    if code:
        raise SystemExit(f"learning_faults: `vqvideo {' '.join(argv)}` failed (exit {code}); see its log above")


def psnr_of(report: dict, system: str) -> float:
    return report["frame_quality"]["systems"][system]["psnr"]["mean"]


def run_fault(name: str, demo: Path, args: argparse.Namespace) -> dict:
    work = demo / "faults" / name
    timings = json.loads((demo / "timings.json").read_text())
    with FAULTS[name]():
        for stage, steps in (("top_prior", args.top_steps), ("bottom_prior", args.bottom_steps)):
            # steps, not the clock, end each run (a 1-thread run beside other work hits the demo's safety caps)
            override = ["--trainer.max_time=null"] + ([] if steps is None else [f"--trainer.max_steps={steps}"])
            override += shlex.split(args.top_args if stage == "top_prior" else args.bottom_args)
            run_command(["fit", "--config", str(fault_config(demo, stage, work)), *override])
        checkpoints = [f"--vqvae={demo / 'vqvae.ckpt'}", f"--top={work / 'top_prior.ckpt'}",
                       f"--bottom={work / 'bottom_prior.ckpt'}"]
        data = [] if timings.get("data", "bundled clips") == "bundled clips" else [
            f"--data.root={timings['data']}", "--data.max_clips_per_video=1", f"--num_clips={args.num_clips}"]
        run_command(["eval", *checkpoints, f"--out={work / 'eval'}", f"--num_samples={args.num_samples}",
                  "--batch_size=5", "--overwrite", *data])
    report = json.loads((work / "eval" / "report.json").read_text())
    samples, copy_last = psnr_of(report, "sample_mean"), psnr_of(report, "copy_last")
    return {"fault": name, "samples_psnr": samples, "copy_last_psnr": copy_last,
            "passes_check": samples >= copy_last + args.margin}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", type=Path, default=Path("outputs/sprites"), help="a finished `vqvideo demo` folder")
    parser.add_argument("--faults", default=",".join(FAULTS), help=f"comma-separated, from {', '.join(FAULTS)}")
    parser.add_argument("--top_steps", type=int, default=None,
                        help="default: the demo config's (at least one validation interval, 25: the best checkpoint)")
    parser.add_argument("--bottom_steps", type=int, default=None, help="default: the demo config's (at least 50)")
    parser.add_argument("--num_clips", type=int, default=10)
    parser.add_argument("--num_samples", type=int, default=2)
    parser.add_argument("--margin", type=float, default=0.0, help="dB samples must beat copy-last by")
    parser.add_argument("--top_args", default="", help="more `vqvideo fit` overrides for the top prior, "
                        "after an = sign: --top_args='--trainer.val_check_interval=150'")
    parser.add_argument("--bottom_args", default="", help="the same for the bottom prior")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: runs beside other work)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = [run_fault(name, args.demo, args) for name in args.faults.split(",")]
    for result in results:
        print(f"{result['fault']:<18} samples {result['samples_psnr']:6.2f} dB  copy-last "
              f"{result['copy_last_psnr']:6.2f} dB  check {'PASSES' if result['passes_check'] else 'fails'}")
    (args.demo / "faults" / "summary.json").write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
