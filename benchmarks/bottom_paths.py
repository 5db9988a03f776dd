"""Which part of the bottom prior keeps it from learning the code world? Train variants side by side, same data.

The code world of `code_motion.py` fixes every bottom code: an even bottom slice is a lookup of the top codes
(each cell's parent top code names the object there), an odd one lies between two even ones. A prior that reads
its conditioning gets every object cell right given the true top codes and past slices; the Table 8 bottom prior
at the demo's size gets none after 3000 steps. This script trains, on one code cache (`code_motion.py --out DIR`
writes it), the demo's bottom prior architecture with and without the paths that are not in the paper
(`cond_top_direct`, `cond_logits`), plus its conditioning stack alone under a 1×1 head (no PixelCNN), with the
demo YAML's optimiser (AdamW, its batch size, learning rate and warm-up, the project's warmup-cosine over all
steps to its min_lr_ratio; bf16 autocast) and prints,
every `--every` steps, on held-out clips given the true top codes and past slices (teacher forcing, argmax):

  even/odd obj: share of object cells right on bottom slice 4 / 5; bits: bits/code on slices 4 and 5;
  gates: the conditioning's mean |term| in the gated layers' pre-activations (beyond ~3 tanh and sigmoid are flat).

    python benchmarks/code_motion.py --out outputs/code_motion            # once: the cache (and the demo priors)
    python benchmarks/bottom_paths.py --cache outputs/code_motion/codes --variants table8,both --steps 1500
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from code_motion import NUM_BACKGROUNDS, read_split  # noqa: E402
from variant_training import parser_for, train_variant  # noqa: E402

from vqvideo.cache.manifest import read_manifest  # noqa: E402
from vqvideo.lit.configs import read_yaml  # noqa: E402
from vqvideo.models.bottom_prior import BottomPrior, BottomPriorConfig  # noqa: E402

VARIANTS = {
    "table8": {},
    "parent": {"cond_top_direct": True},
    "cond_logits": {"cond_logits": True},
    "both": {"cond_top_direct": True, "cond_logits": True},
    "stack_alone": {},
    "stack_alone_parent": {"cond_top_direct": True},
}


class StackAlone(torch.nn.Module):
    """The conditioning stack under a 1×1 head: what the stack learns when nothing else predicts."""

    def __init__(self, prior: BottomPrior):
        super().__init__()
        self.conditioning, self.head = prior.conditioning, torch.nn.Conv2d(prior.config.cond_channels, prior.num_codes, 1)

    def forward(self, bottom_codes, top_codes, slice_index):
        """BottomPrior.forward's arguments (int64 codes, (B,) slice index) → logits (B, K, Hb, Wb)."""
        return self.head(self.conditioning(top_codes, bottom_codes, slice_index))


DEMO_YAML = "experiments/demo/bottom_prior.yaml"


def build(variant: str, spec_facts: tuple[int, int, tuple[int, int, int]], seed: int) -> torch.nn.Module:
    config = BottomPriorConfig(**read_yaml(DEMO_YAML)["model"]["init_args"]["prior"])
    torch.manual_seed(seed)  # the initial weights and then the batches
    prior = BottomPrior(replace(config, **VARIANTS[variant]), *spec_facts)
    return StackAlone(prior) if variant.startswith("stack_alone") else prior


def evaluate(model: torch.nn.Module, val, num_clips: int) -> list[float]:
    """[object cells right, bits/code] on slices 4 and 5 of the first `num_clips` held-out clips, then the
    conditioning's mean |term| in the gates (nan for the stack alone)."""
    terms = []
    hooks = [] if isinstance(model, StackAlone) else [
        projection.register_forward_hook(lambda module, args, output: terms.append(output.abs().mean().item()))
        for layer in model.pixelcnn.layers for projection in (layer.vertical_cond, layer.horizontal_cond)]
    model.eval()
    figures = []
    with torch.no_grad():
        for n in (4, 5):
            rows = torch.arange(num_clips)
            logits = model(val.bottom[rows], val.top[rows], torch.full((num_clips,), n))
            truth = val.bottom[rows, n]
            objects = truth >= NUM_BACKGROUNDS
            figures += [round(float((logits.argmax(1) == truth)[objects].float().mean()), 3),
                        round(F.cross_entropy(logits, truth).item() / math.log(2), 4)]
    for hook in hooks:
        hook.remove()
    model.train()
    return figures + [round(float(np.mean(terms)), 2) if terms else float("nan")]


def train(variant: str, args: argparse.Namespace, train_codes, val_codes, facts) -> None:
    model = build(variant, facts, args.seed)

    def loss_of(batch_size: int) -> torch.Tensor:
        rows = torch.randint(len(train_codes.top), (batch_size,))
        slice_index = torch.randint(2, train_codes.bottom.shape[1], (batch_size,))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(train_codes.bottom[rows], train_codes.top[rows], slice_index)
        return F.cross_entropy(logits.float(), train_codes.bottom[rows, slice_index])

    def report(step: int, seconds: float) -> None:
        even, even_bits, odd, odd_bits, gates = evaluate(model, val_codes, args.num_val)
        print(f"{variant:<20} seed {args.seed} step {step:>5} {seconds:6.0f} s   even obj {even:.3f}  odd obj {odd:.3f}"
              f"   bits {even_bits:.4f} {odd_bits:.4f}   gates {gates}", flush=True)

    train_variant(model, DEMO_YAML, args.steps, args.every, loss_of, report)


def main() -> int:
    args = parser_for(__doc__, VARIANTS, "table8,both", steps=1500, every=250).parse_args()
    torch.set_num_threads(args.threads)
    spec = read_manifest(args.cache).code_spec  # a CacheError says how to build a missing cache
    (train_codes, _), (val_codes, _) = read_split(args.cache, "train"), read_split(args.cache, "val")
    facts = (spec.num_top_codes, spec.num_bottom_codes, spec.top_to_bottom_stride)
    for variant in args.variants.split(","):
        train(variant, args, train_codes, val_codes, facts)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
