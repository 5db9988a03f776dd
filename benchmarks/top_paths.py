"""Which part of the top prior keeps it from learning motion? Train variants side by side, same data.

In the code world of `code_motion.py` each future top slice follows from the given codes: an object's place there
is its place in the given slices moved by its velocity, which the two given bottom slices show. The plain CNN of
`code_motion.py` (`Motion`) places a quarter of the first slice's objects after 3000 steps; the demo's top prior
1.3%. This script trains, on one code cache (`code_motion.py --out DIR` writes it), the demo's top prior
architecture with and without the options that are not in the paper (`cond_per_slice`: each predicted slice its
own conditioning features; `cond_logits`: a head from the conditioning features to the logits), and `Motion`
beside them, with the demo YAML's optimiser (AdamW, its batch size, learning rate, weight decay and warm-up, the
project's warmup-cosine over all steps to its min_lr_ratio; bf16 autocast as the demo trains) and prints, every
`--every` steps, on held-out clips, per future top slice:

  greedy obj: share of object cells right in the prior's greedy codes (the cached sampler, top-k 1; `Motion`:
      its argmax), the figure `code_motion.py` reports;
  forced obj: the same with the true codes before each position (teacher forcing, argmax), what training sees;
  bits: teacher-forced bits/code; gates: the conditioning's mean |term| in the gated layers' pre-activations.

    python benchmarks/code_motion.py --out outputs/code_motion            # once: the cache (and the demo priors)
    python benchmarks/top_paths.py --cache outputs/code_motion/codes --variants table5,both,motion --steps 3000
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
from code_motion import Motion, read_split, shares  # noqa: E402
from variant_training import parser_for, train_variant  # noqa: E402

from vqvideo.cache.manifest import read_manifest  # noqa: E402
from vqvideo.lit.configs import read_yaml  # noqa: E402
from vqvideo.models.top_prior import TopPrior, TopPriorConfig  # noqa: E402
from vqvideo.sampling import get_sampler  # noqa: E402
from vqvideo.sampling.base import SamplingOptions  # noqa: E402

VARIANTS = {
    "table5": {},
    "per_slice": {"cond_per_slice": True},
    "cond_logits": {"cond_logits": True},
    "both": {"cond_per_slice": True, "cond_logits": True},
    "motion": None,
}
DEMO_YAML = "experiments/demo/top_prior.yaml"


def build(variant: str, spec, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)  # the initial weights and then the batches
    if VARIANTS[variant] is None:
        return Motion(spec)
    config = replace(TopPriorConfig(**read_yaml(DEMO_YAML)["model"]["init_args"]["prior"]), **VARIANTS[variant])
    return TopPrior(config, spec.num_top_codes, spec.num_bottom_codes, spec.given_top_shape[0],
                    spec.given_bottom_shape[0], spec.num_future_top_slices)


def logits_of(model: torch.nn.Module, target: torch.Tensor, given) -> torch.Tensor:
    """target (B, Tp, Ht, Wt) int64 (teacher forcing; `Motion` ignores it), given Codes → (B, K, Tp, Ht, Wt)."""
    return model(given.top, given.bottom) if isinstance(model, Motion) else model(target, given.top, given.bottom)


def evaluate(model: torch.nn.Module, val, val_given, num_given: int, num_clips: int) -> dict:
    """Per future slice: greedy and teacher-forced object cells right, bits/code; the gates' conditioning term."""
    rows = torch.arange(num_clips)
    target = val.top[rows, num_given:]
    given = type(val_given)(val_given.top[rows], val_given.bottom[rows])
    terms = []
    hooks = [] if isinstance(model, Motion) else [
        projection.register_forward_hook(lambda module, args, output: terms.append(output.abs().mean().item()))
        for layer in model.pixelcnn.layers for projection in (layer.vertical_cond, layer.horizontal_cond)]
    model.eval()
    with torch.no_grad():
        logits = logits_of(model, target, given)
        for hook in hooks:
            hook.remove()
        if isinstance(model, Motion):
            greedy = logits.argmax(1)
        else:
            greedy = get_sampler("cached").sample_top(model, given.top, given.bottom, target.shape[1],
                                                      SamplingOptions(top_k=1), None)
    model.train()
    bits = F.cross_entropy(logits, target, reduction="none").mean(dim=(0, 2, 3)) / math.log(2)
    return {"greedy": shares(greedy, target)[1], "forced": shares(logits.argmax(1), target)[1],
            "bits": [round(float(b), 3) for b in bits], "gates": round(float(np.mean(terms)), 2) if terms else None}


def train(variant: str, args: argparse.Namespace, data, spec) -> None:
    (train_codes, train_given), (val_codes, val_given) = data
    model = build(variant, spec, args.seed)
    num_given = spec.given_top_shape[0]

    def loss_of(batch_size: int) -> torch.Tensor:
        rows = torch.randint(len(train_codes.top), (batch_size,))
        target = train_codes.top[rows, num_given:]
        given = type(train_given)(train_given.top[rows], train_given.bottom[rows])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = logits_of(model, target, given)
        return F.cross_entropy(logits.float(), target)

    def report(step: int, seconds: float) -> None:
        figures = evaluate(model, val_codes, val_given, num_given, args.num_val)
        print(f"{variant:<12} seed {args.seed} step {step:>5} {seconds:6.0f} s   greedy obj {figures['greedy']}  "
              f"forced obj {figures['forced']}  bits {figures['bits']}  gates {figures['gates']}", flush=True)

    train_variant(model, DEMO_YAML, args.steps, args.every, loss_of, report)


def main() -> int:
    args = parser_for(__doc__, VARIANTS, "table5,both,motion", steps=3000, every=300).parse_args()
    torch.set_num_threads(args.threads)
    spec = read_manifest(args.cache).code_spec  # a CacheError says how to build a missing cache
    data = read_split(args.cache, "train"), read_split(args.cache, "val")
    for variant in args.variants.split(","):
        train(variant, args, data, spec)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
