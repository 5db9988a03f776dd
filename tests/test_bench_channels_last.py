"""benchmarks/bench_channels_last.py: its last line is the JSON it promises (step times, the demo VQ-VAE's 18
convolutions, the depth x batch x width scan with a cause for every failure), and timing leaves the model in the
default layout."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from vqvideo.lit.configs import vqvae_and_batch
from vqvideo.models.memory_format import QUANTITIES

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_channels_last  # noqa: E402  (a script folder, not a package)


def test_prints_step_times_checks_and_scan_as_json(capsys):
    bench_channels_last.main(["--rounds", "1", "--trials", "2"])
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["bench"] == "channels_last" and set(report["step_ms"]) == {"default", "channels_last"}
    assert report["speedup"] > 0 and len(report["demo_checks_passed"]) == 18
    scan = report["scan_failures"]
    assert len(scan) == 4 * 3 * 3 and all(row["float32"] == 0 for row in scan)
    for row in scan:
        assert 0 <= row["bf16"] <= 2 and set(row["bf16_by_quantity"]) == set(QUANTITIES)
        assert sum(row["bf16_by_quantity"].values()) >= row["bf16"]  # every failed check names what differed


def test_timing_leaves_the_model_in_the_default_layout():
    model, video = vqvae_and_batch(bench_channels_last.DEMO_VQVAE)
    assert video.shape == (8, 3, 16, 64, 64) and -1 <= video.min() and video.max() <= 1
    bench_channels_last.time_layouts(model, video, rounds=1)
    assert model.decoder[0].weight.is_contiguous()
