"""benchmarks/bench_sample.py (also the sampler part of the GPU check): the plain sampler's time is scaled by the
positions it really ran. The bottom prior's plain sampler runs `max_positions` in each of its slices; scaling that
time as one slice's overstated the plain sampler 6× at the paper's shapes. Here `timed` returns the number of full
prior passes instead of seconds, so a correct scaling gives exactly one pass per sampled position. The exactness
report: every differing code, explained or not by the logits' float difference; seeded weights."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from vqvideo.models.pixelcnn import GatedPixelCNN
from vqvideo.sampling.base import pick_codes

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


def test_a_code_flipped_at_a_cdf_boundary_is_explained_one_far_from_it_is_not():
    """Three equally likely codes: boundaries at 1/3 and 2/3. Logits 1e-6 apart move the first boundary by ~7e-7, so
    a uniform 1e-7 above it picks code 1 from one and code 0 from the other: explained. A code that differs with
    its uniform in the middle of the CDF cannot come from float error: unexplained, and `identical` is False."""
    plain, cached = torch.zeros(3), torch.tensor([1e-6, 0.0, 0.0])
    uniform = torch.tensor([1 / 3 + 1e-7], dtype=torch.float64)
    picked = [int(pick_codes(logits[None], uniform, bench_sample.OPTIONS)) for logits in (plain, cached)]
    assert picked == [1, 0]
    tolerance = bench_sample.boundary_tolerance(1e-6)
    flipped = bench_sample.difference("repick", (0, 0, 0, 0), (1, 0), plain, float(uniform), tolerance)
    assert flipped["explained"] and flipped["boundary_distance"] < 2e-7
    wrong = bench_sample.difference("repick", (0, 0, 0, 1), (0, 2), plain, 0.5, tolerance)
    assert not wrong["explained"] and wrong["boundary_distance"] == pytest.approx(1 / 6)
    assert bench_sample.exact(1e-6, [flipped]) and not bench_sample.exact(1e-6, [flipped, wrong])
    assert not bench_sample.exact(2e-4, [])  # logits that disagree beyond float error


def test_differences_are_found_per_video_and_only_the_first_of_a_naive_run(tmp_path):
    expected = torch.tensor([[[[0, 1, 2]]], [[[0, 1, 2]]]])  # (B=2, T=1, H=1, W=3)
    found = torch.tensor([[[[0, 2, 1]]], [[[0, 1, 0]]]])
    logits, uniforms = torch.zeros(2, 3, 1, 1, 3), torch.full((2, 1, 1, 3), 0.5, dtype=torch.float64)
    every = bench_sample.differences_of("repick", expected, found, logits, uniforms, 1e-6)
    assert [item["position"] for item in every] == [[0, 0, 0, 1], [0, 0, 0, 2], [1, 0, 0, 2]]
    first = bench_sample.differences_of("naive", expected, found, logits, uniforms, 1e-6, first_only=True)
    assert [item["position"] for item in first] == [[0, 0, 0, 1], [1, 0, 0, 2]]


def test_two_runs_are_the_same_run(tmp_path):
    config_dir = gpu_check.derive_experiment("demo", tmp_path, gpu_check.TINY)
    first, second = (bench_sample.bench_top(2, 1, 0, config_dir) for _ in range(2))
    assert first.max_logit_error == second.max_logit_error and first.differences == second.differences
    assert first.identical == second.identical
