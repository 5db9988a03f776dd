"""benchmarks/bench_sample.py (also the sampler part of the GPU check): the plain sampler's time is scaled by the
positions it really ran. The bottom prior's plain sampler runs `max_positions` in each of its slices; scaling that
time as one slice's overstated the plain sampler 6× at the paper's shapes. Here `timed` returns the number of full
prior passes instead of seconds, so a correct scaling gives exactly one pass per sampled position."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from vqvideo.models.pixelcnn import GatedPixelCNN

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_sample  # noqa: E402  (a script folder, not a package)
import gpu_check  # noqa: E402


@pytest.fixture
def pass_counting_timer(monkeypatch):
    """`timed` that returns (full GatedPixelCNN passes during the call, result)."""
    original = GatedPixelCNN.logits
    passes = []

    def counted(self, *args):
        passes.append(1)
        return original(self, *args)

    def timed(function, device="cpu"):
        passes.clear()
        result = function()
        return float(len(passes)), result

    monkeypatch.setattr(GatedPixelCNN, "logits", counted)
    monkeypatch.setattr(bench_sample, "timed", timed)


@pytest.mark.parametrize("bench", [bench_sample.bench_top, bench_sample.bench_bottom], ids=["top", "bottom"])
@pytest.mark.parametrize("prefix", [3, None], ids=["prefix", "whole"])
def test_plain_sampler_scaled_to_one_pass_per_position(bench, prefix, pass_counting_timer, tmp_path):
    config_dir = gpu_check.derive_experiment("demo", tmp_path, gpu_check.TINY)
    row = bench(1, prefix, 0, config_dir)
    assert row.naive_s == pytest.approx(row.positions)
    assert row.identical
