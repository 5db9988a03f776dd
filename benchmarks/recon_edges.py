"""Where a VQ-VAE's reconstruction error sits: at sharp edges or in flat areas.

    python benchmarks/recon_edges.py outputs/sprites/vqvae.ckpt [--data data/sprites] [--num_videos 12]

Reconstructs one window (the VQ-VAE's clip length and resolution, starting at frame 16) of each held-out video of
--data (the validation files of a folder root at the VQ-VAE's val_fraction, as its training split them) and prints
the PSNR
over all pixels, over the pixels next to a sharp edge of the input (a colour step above 0.1 of the [-1, 1] range to
a 4-neighbour, in any channel), over the rest, and the share of the squared error at those edges. On sprites
the edges are the sprites' outlines: a reconstruction limited there needs codes that place an outline within a
4×4 patch, not more steps on the flat background.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from vqvideo.data.sources import in_split
from vqvideo.data.video import read_clip
from vqvideo.lit.prediction import input_spec
from vqvideo.lit.vqvae_module import load_vqvae

EDGE_STEP = 0.1


def edge_mask(clips: torch.Tensor) -> torch.Tensor:
    """(N, 3, T, H, W) float in [-1, 1] → (N, T, H, W) bool: pixels with a colour step above EDGE_STEP to a
    4-neighbour."""
    rows = (clips[..., 1:, :] - clips[..., :-1, :]).abs().amax(dim=1) > EDGE_STEP
    cols = (clips[..., :, 1:] - clips[..., :, :-1]).abs().amax(dim=1) > EDGE_STEP
    mask = torch.zeros(clips.shape[0], *clips.shape[2:], dtype=torch.bool)
    mask[..., 1:, :] |= rows
    mask[..., :-1, :] |= rows
    mask[..., :, 1:] |= cols
    mask[..., :, :-1] |= cols
    return mask


def db(mse: torch.Tensor) -> float:
    return 10 * torch.log10(4 / mse).item()  # range 2


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("vqvae", help="a VQ-VAE checkpoint written by `vqvideo fit`")
    parser.add_argument("--data", default="data/sprites", help="a folder of videos, each at least 16 frames longer than a clip")
    parser.add_argument("--num_videos", type=int, default=12)
    args = parser.parse_args()
    spec, root = input_spec(args.vqvae, None), Path(args.data)
    files = [path for path in sorted(root.glob("*.mp4"))
             if in_split(path.relative_to(root).as_posix(), "val", spec.val_fraction)]
    clips = torch.stack([read_clip(str(path), 16, spec.num_frames, spec.frame_stride, spec.resolution)
                         for path in files[: args.num_videos]])
    error = (load_vqvae(args.vqvae).reconstruct(clips).clamp(-1, 1) - clips).square().mean(dim=1)  # (N, T, H, W)
    edges = edge_mask(clips)
    print(f"{args.vqvae} on {len(clips)} held-out videos of {args.data}: all {db(error.mean()):.2f} dB; "
          f"edge pixels ({edges.float().mean():.1%} of all) {db(error[edges].mean()):.2f} dB; elsewhere "
          f"{db(error[~edges].mean()):.2f} dB; share of the squared error at edges "
          f"{(error[edges].sum() / error.sum()).item():.1%}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
