"""Which prior costs the predicted frames: decode true, sampled, greedy or copied codes level by level.

    python benchmarks/code_ablation.py outputs/demo [--temperature 1.0] [--every 4] [--top CKPT] [--bottom CKPT]

Reads <run>/vqvae.ckpt, top_prior.ckpt, bottom_prior.ckpt and the code cache <run>/codes (its val split: clips
the models never trained on). For each variant it decodes (top codes, bottom codes) with the VQ-VAE and prints
the PSNR (dB) of frame 4 (the first predicted frame), of frames 4-15 and of the given frames 0-3 against the
decoding of the clip's true codes (the reconstruction, the ceiling). "Copied": every future slice repeats the
last given slice's codes (the code-level copy-last baseline). Splicing true and sampled bottom codes at the first
future slice separates what that slice's codes cost frame 4 from what the later slices cost it through the
decoder's temporal receptive field. The given slices are the given frames encoded alone,
as prediction sees them. docs/prediction-quality.md explains what the numbers showed.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from vqvideo.cache.dataset import CodesDataset, splice_codes
from vqvideo.cache.manifest import read_manifest
from vqvideo.lit.prediction import load_prediction_models
from vqvideo.sampling import get_sampler
from vqvideo.sampling.base import SamplingOptions
from vqvideo.sampling.pipeline import copy_last_slice


def spliced(head: torch.Tensor, tail: torch.Tensor, num_slices: int) -> torch.Tensor:
    """(B, T, H, W) pair → the first num_slices slices of head, then tail's."""
    return torch.cat([head[:, :num_slices], tail[:, num_slices:]], dim=1)


def psnr_per_frame(video: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """(B, 3, T, H, W) pair in [-1, 1] → (T,) dB of the mean squared error over clips (range 2)."""
    return 10 * torch.log10(4 / (video - reference).square().mean(dim=(0, 1, 3, 4)))


def db(psnr: torch.Tensor) -> str:
    """(F,) per-frame PSNRs → their mean as printed: "exact" where every frame decodes as the reconstruction, "-"
    where only some do (an infinite PSNR has no mean)."""
    if torch.isfinite(psnr).all():
        return f"{psnr.mean():5.1f}"
    return "exact" if torch.isinf(psnr).all() else "  -  "


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a demo output folder (vqvae.ckpt, top_prior.ckpt, bottom_prior.ckpt, codes/)")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top", help="top prior checkpoint (default <run>/top_prior.ckpt)")
    parser.add_argument("--bottom", help="bottom prior checkpoint (default <run>/bottom_prior.ckpt)")
    parser.add_argument("--every", type=int, default=1, help="use every n-th validation clip (4: no overlap at the "
                                                                "cache's 4-frame clip step)")
    args = parser.parse_args()
    models = load_prediction_models(f"{args.run}/vqvae.ckpt", args.top or f"{args.run}/top_prior.ckpt",
                                    args.bottom or f"{args.run}/bottom_prior.ckpt")
    data = CodesDataset(f"{args.run}/codes", read_manifest(f"{args.run}/codes"), "val", "bottom", random_slices=False)
    codes = data.gather(np.arange(0, len(data), args.every))
    given_top, given_bottom = codes["given_top"], codes["given_bottom"]
    top, bottom = splice_codes(given_top, codes["top"]), splice_codes(given_bottom, codes["bottom"])
    sampler, generator = get_sampler("cached"), torch.Generator().manual_seed(0)
    future_top, future_bottom = top.shape[1] - given_top.shape[1], bottom.shape[1] - given_bottom.shape[1]

    def sampled_top(options: SamplingOptions) -> torch.Tensor:
        future = sampler.sample_top(models.top_prior, given_top, given_bottom, future_top, options, generator)
        return torch.cat([given_top, future], dim=1)

    def sampled_bottom(top_codes: torch.Tensor, options: SamplingOptions) -> torch.Tensor:
        return sampler.sample_bottom(models.bottom_prior, top_codes, given_bottom, future_bottom, options, generator)

    options, greedy = SamplingOptions(temperature=args.temperature), SamplingOptions(top_k=1)
    sampled, copied_bottom = sampled_top(options), copy_last_slice(given_bottom, bottom.shape[1])
    sampled_under_true_top, first = sampled_bottom(top, options), given_bottom.shape[1] + 1
    variants = {
        "sampled top + true bottom": (sampled, bottom), "true top + sampled bottom": (top, sampled_under_true_top),
        "true top, 1st future bottom slice sampled": (top, spliced(sampled_under_true_top, bottom, first)),
        "true top, true bottom to the 1st future slice, sampled after": (top, spliced(bottom, sampled_under_true_top,
                                                                                       first)),
        "true top + greedy bottom": (top, sampled_bottom(top, greedy)),
        "both sampled": (sampled, sampled_bottom(sampled, options)),
        "both greedy": (greedy_top := sampled_top(greedy), sampled_bottom(greedy_top, greedy)),
        "copied top + true bottom": (copied_top := copy_last_slice(given_top, top.shape[1]), bottom),
        "true top + copied bottom": (top, copied_bottom), "both copied": (copied_top, copied_bottom),
    }
    reconstruction = models.vqvae.decode_codes(top, bottom).clamp(-1, 1)
    num_given = models.vqvae.bottom_stride[0] * given_bottom.shape[1]  # frames of the given slices
    print(f"{len(top)} val clips of {args.run}/codes, temperature {args.temperature}; PSNR vs the reconstruction; "
          f"top codes equal to the clip's own, per future top slice")
    width = max(map(len, variants))
    for name, (top_codes, bottom_codes) in variants.items():
        psnr = psnr_per_frame(models.vqvae.decode_codes(top_codes, bottom_codes).clamp(-1, 1), reconstruction)
        top_match = (top_codes == top)[:, given_top.shape[1]:].float().mean(dim=(0, 2, 3))
        print(f"{name:{width}s} frame {num_given}: {db(psnr[num_given:num_given + 1])}  "
              f"frames {num_given}-{len(psnr) - 1}: {db(psnr[num_given:])}  given frames: {db(psnr[:num_given])}  "
              "top codes right: "
              + " ".join(f"{share:.2f}" for share in top_match.tolist()))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
