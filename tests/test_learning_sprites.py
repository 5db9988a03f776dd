"""Does the pipeline learn motion? The whole sprites demo (`vqvideo demo --data sprites`: generate the bouncing
sprites, train the VQ-VAE and both priors, sample, evaluate) must predict the held-out clips' 12 future frames
better than copying the last given frame.

Sprites have a known answer: the 4 given frames fix every position and velocity, and copy-last is poor.
`benchmarks/learning_faults.py` retrains the priors with one fault patched in at a time (docs/sprites.md has the
measured table): given codes spliced in mirrored or a dropped conditioning stack pull the samples under copy-last; a
causal mask that leaks or a bottom window that reads the slice it predicts let the prior see its answer in training,
which drives its teacher-forced bits to ~0 (and, for the window, the samples still beat copy-last). A blind mask
(no context within the slice) leaves both near the intact pipeline's, so the test also re-scores the priors with the
present slice hidden from their masked convolutions: a prior that learned to use that context loses bits, one that
never saw it loses none.
Beating copy-last is a low bar on sprites (painting the background colour scores higher:
benchmarks/background_baseline.py); this test guards against a broken pipeline, not for good predictions.
About 6 minutes on 2 CPU cores: `make test-all`, or `pytest -m slow tests/test_learning_sprites.py`.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from unittest import mock

import pytest

from vqvideo.cli import main as cli_main
from vqvideo.models import pixelcnn

REPO = Path(__file__).resolve().parents[1]
MIN_BITS = 0.2  # bits/code: the intact demo priors score 1.5-2.7 on sprites' future slices; one reading its answer, ~0
# hiding the present slice cost the intact priors 0.6-0.9 bits (top), 2.3-3.3 (bottom); priors trained blind, 0
MIN_CONTEXT_BITS = 0.3
PRESENT_SLICE_MASK = pixelcnn.CausalMaskedConv3d._present_slice_mask


def without_present_slice(kernel_size, stack, include_current):
    mask = PRESENT_SLICE_MASK(kernel_size, stack, include_current)
    mask[:, :, -1] = 0  # (out, in, t, h, w): the last time tap is the slice being predicted
    return mask


def bits_per_slice(report: dict) -> dict[str, list[float]]:
    return {level: report["diagnostics"][level]["bits_per_slice"] for level in ("top", "bottom")}


@pytest.mark.slow
def test_sprites_demo_samples_beat_copy_last(tmp_path):
    (tmp_path / "experiments").symlink_to(REPO / "experiments")  # the demo reads experiments/demo from its cwd
    out = tmp_path / "outputs" / "sprites"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "vqvideo.cli", "demo", "--data", "sprites", "--out", str(out)],
                            cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((out / "eval" / "report.json").read_text())
    systems = report["frame_quality"]["systems"]
    samples, copy_last = (systems[name]["psnr"]["mean"] for name in ("sample_mean", "copy_last"))
    stages = json.loads((out / "timings.json").read_text())["stages"]
    capped = [name for name, stage in stages.items() if stage.get("time_cap_hit")]
    bits = bits_per_slice(report)
    assert all(value > MIN_BITS for values in bits.values() for value in values), (
        f"teacher-forced bits/code per future slice {bits}: a prior that sees the code it predicts scores ~0")
    blind = rescore_without_present_slice(tmp_path, out)
    assert all(hidden - seen > MIN_CONTEXT_BITS for level in bits for seen, hidden in zip(bits[level], blind[level])), (
        f"bits/code per future slice {bits}, with the present slice hidden {blind}: the priors do not use the context "
        f"within the slice they predict")
    assert samples > copy_last, (
        f"samples {samples:.2f} dB <= copy-last {copy_last:.2f} dB over the 12 predicted frames of the held-out "
        f"sprites; stages stopped by their time cap: {capped or 'none'}")


def rescore_without_present_slice(tmp_path: Path, out: Path) -> dict[str, list[float]]:
    """The demo's eval of the same checkpoints (one sample: only the teacher-forced bits are read) with every masked
    convolution blind to the slice it predicts."""
    checkpoints = [f"--{name}={out / f'{stage}.ckpt'}" for name, stage in
                   (("vqvae", "vqvae"), ("top", "top_prior"), ("bottom", "bottom_prior"))]
    run = json.loads((out / "eval" / "run.json").read_text())["data"]
    with mock.patch.object(pixelcnn.CausalMaskedConv3d, "_present_slice_mask", staticmethod(without_present_slice)):
        code = cli_main(["eval", *checkpoints, f"--out={out / 'eval_without_present_slice'}", "--num_samples=1",
                         "--batch_size=5", f"--data.root={tmp_path / run['root']}",
                         f"--data.max_clips_per_video={run['max_clips_per_video']}", f"--num_clips={run['num_clips']}"])
    assert code == 0
    return bits_per_slice(json.loads((out / "eval_without_present_slice" / "report.json").read_text()))
