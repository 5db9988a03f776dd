"""What `bottom_paths.py` and `top_paths.py` share: train one model variant on the code world with a demo prior
YAML's optimiser and print figures every few steps, and their command line."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Callable

import torch

from vqvideo.lit.configs import read_yaml
from vqvideo.lit.optimization import OptimizationConfig, warmup_cosine


def parser_for(doc: str, variants: dict, default_variants: str, steps: int, every: int) -> argparse.ArgumentParser:
    """The command line of a variant benchmark: the code world's cache, which variants, steps, seed, threads."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=Path("outputs/code_motion/codes"))
    parser.add_argument("--variants", default=default_variants, help=f"comma-separated, from {', '.join(variants)}")
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--every", type=int, default=every)
    parser.add_argument("--num_val", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0, help="initial weights and batch order")
    return parser


def train_variant(model: torch.nn.Module, demo_yaml: str, steps: int, every: int,
                  loss_of: Callable[[int], torch.Tensor], report: Callable[[int, float], None]) -> None:
    """Train `model` for `steps` with the optimiser of `demo_yaml` (AdamW, its learning rate, betas, weight decay and
    warm-up, the project's warmup-cosine over all `steps` to its min_lr_ratio), bf16 autocast in the forward pass.
    loss_of(batch_size) draws a batch and returns its float32 loss; report(step, seconds) runs every `every` steps."""
    demo = read_yaml(demo_yaml)
    config = OptimizationConfig(**demo["model"]["init_args"]["optimization"])
    batch_size = demo["data"]["init_args"]["batch_size"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, betas=tuple(config.adam_betas),
                                  weight_decay=config.weight_decay)
    scheduler = warmup_cosine(optimizer, config.warmup_steps, steps, config.min_lr_ratio)
    start = time.time()
    for step in range(1, steps + 1):
        loss = loss_of(batch_size)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        if step % every == 0:
            report(step, time.time() - start)
