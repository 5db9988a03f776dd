"""Does the demo VQ-VAE's encoder survive training? A plain-torch replica of its training step that prints, every few
steps, what collapses first (issue 23: on sprites the bottom codebook fell to one code and the VQ-VAE decoded grey).

The model is experiments/demo/vqvae.yaml's VQ-VAE; the step is the module's loss (reconstruction MSE + β
commitment) under bf16 autocast with AdamW, linear lr warm-up and gradient clipping as in the demo; clips are
16-frame windows of the first 40 videos of --data. Printed per line: train PSNR, commitment loss, batch perplexity of
both codebooks, the share of positive outputs of each encoder stage's last ReLU (0 = dead: its latents are one
constant vector), the gradient norm and the bottom-mask probability.

  python benchmarks/vqvae_collapse.py --data data/sprites --lr 3e-3 --ema_decay 0.95       # the demo: collapses
  python benchmarks/vqvae_collapse.py --data data/sprites --lr 3e-4 --ema_decay 0.99       # both codebooks alive
Measured (one thread, 2026-12-06): see docs/sprites.md.
"""

from __future__ import annotations

import argparse
import glob
import math

import torch

from vqvideo.data.video import read_clip
from vqvideo.lit.configs import read_yaml
from vqvideo.models.vqvae import VQVAE, VQVAEConfig


def load_clips(root: str, num_videos: int = 40) -> torch.Tensor:
    """(N, 3, 16, 64, 64) float32 in [-1, 1]: four 16-frame windows of each of the first videos."""
    files = sorted(glob.glob(f"{root}/*.mp4"))[:num_videos]
    return torch.stack([read_clip(path, start, 16, 1, 64) for path in files for start in (0, 16, 32, 48)])


def relu_watch(model: VQVAE) -> dict[str, float]:
    """Share of positive outputs of each encoder stage's last ReLU, updated on every forward."""
    shares: dict[str, float] = {}
    for name, stage in (("bottom", model.bottom_encoder), ("top", model.top_encoder)):
        stage[-1].register_forward_hook(
            lambda module, inputs, output, name=name: shares.__setitem__(name, (output > 0).float().mean().item()))
    return shares


def mask_prob(step: int, args: argparse.Namespace) -> float:
    if step >= args.mask_decay_steps:
        return args.mask_prob
    return args.mask_start + (args.mask_prob - args.mask_start) * step / args.mask_decay_steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/sprites", help="a folder of 64-frame 64 px videos")
    parser.add_argument("--config", default="experiments/demo/vqvae.yaml")
    parser.add_argument("--steps", type=int, default=260)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--ema_decay", type=float, default=0.95)
    parser.add_argument("--mask_prob", type=float, default=0.1, help="bottom-mask probability after the schedule")
    parser.add_argument("--mask_start", type=float, default=1.0)
    parser.add_argument("--mask_decay_steps", type=int, default=100)
    parser.add_argument("--warmup_steps", type=int, default=60)
    parser.add_argument("--clip", type=float, default=0.5)
    parser.add_argument("--every", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    settings = read_yaml(args.config)["model"]["init_args"]
    model = VQVAE(VQVAEConfig(**{**settings["vqvae"], "ema_decay": args.ema_decay})).train()
    beta = settings.get("commitment_cost", 0.25)
    clips, shares = load_clips(args.data), relu_watch(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    generator = torch.Generator().manual_seed(0)
    for step in range(args.steps):
        for group in optimizer.param_groups:
            group["lr"] = args.lr * min(1.0, (step + 1) / args.warmup_steps)
        batch = clips[torch.randint(0, len(clips), (8,), generator=generator)]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            output = model(batch, mask_prob(step, args))
        mse = (output.reconstruction.float() - batch).square().mean()
        optimizer.zero_grad()
        (mse + beta * output.commitment_loss).backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        optimizer.step()
        if step % args.every == 0 or step == args.steps - 1:
            print(f"step {step:4d}  psnr {10 * math.log10(4 / mse.item()):5.2f}  commitment "
                  f"{output.commitment_loss.item():.4f}  perplexity bottom {output.bottom.perplexity.item():6.1f} top "
                  f"{output.top.perplexity.item():5.1f}  ReLU>0 bottom {shares['bottom']:.3f} top {shares['top']:.3f}  "
                  f"grad norm {grad_norm.item():6.2f}  mask {mask_prob(step, args):.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
