"""The optimization every stage shares: AdamW under a per-step warmup-cosine schedule."""

import math

import pytest
import torch

from vqvideo.lit.optimization import OptimizationConfig, configure_optimization, warmup_cosine


def test_warmup_cosine_schedule():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = warmup_cosine(optimizer, warmup_steps=4, total_steps=14, min_lr_ratio=0.1)
    factors = []
    for _ in range(16):
        factors.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert factors[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert factors[9] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert factors[14:] == pytest.approx([0.1, 0.1])


def test_schedule_state_holds_only_numbers(tmp_path):
    """A plain dataclass, not a lambda: the scheduler's state_dict loads with torch.load(weights_only=True)."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    state = warmup_cosine(optimizer, warmup_steps=2, total_steps=10).state_dict()
    assert state["lr_lambdas"] == [{"warmup_steps": 2, "total_steps": 10, "min_lr_ratio": 0.0}]
    torch.save(state, tmp_path / "scheduler.pt")
    assert torch.load(tmp_path / "scheduler.pt", weights_only=True)["lr_lambdas"] == state["lr_lambdas"]


def test_configure_optimization_is_adamw_stepped_per_batch():
    config = OptimizationConfig(learning_rate=0.5, adam_betas=(0.8, 0.9), weight_decay=0.1, warmup_steps=0,
                                lr_total_steps=10)
    configured = configure_optimization([torch.nn.Parameter(torch.zeros(1))], config, trainer=None)
    optimizer, scheduler = configured["optimizer"], configured["lr_scheduler"]
    assert isinstance(optimizer, torch.optim.AdamW) and scheduler["interval"] == "step"
    group = optimizer.param_groups[0]
    assert (group["lr"], group["betas"], group["weight_decay"]) == (0.5, (0.8, 0.9), 0.1)
    assert scheduler["scheduler"].lr_lambdas[0].total_steps == 10  # lr_total_steps wins over the trainer's


def test_bad_schedules_are_refused():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match="min_lr_ratio"):
        warmup_cosine(optimizer, warmup_steps=1, total_steps=10, min_lr_ratio=2.0)
