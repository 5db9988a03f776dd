"""`vqvideo eval --trainer.devices 2` (2 CPU processes, gloo): Lightning's prediction loop gives each rank a disjoint,
unpadded part of the clips (uneven here: 3 clips), each rank writes its clips' records, rank 0 builds the report,
and the report equals a 1-process eval's (all but its `run` section), although the clips were batched differently."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from eval_helpers import assert_same_videos, comparable_report, eval_args, save_tiny_stages

from vqvideo.cli import main as vqvideo_main

OPTIONS = ("--num_clips=3", "--num_samples=2", "--batch_size=2", "--seed=3")


@pytest.mark.ddp
def test_two_process_eval_gives_the_one_process_report(tmp_path):
    checkpoints = save_tiny_stages(tmp_path)
    single, double = tmp_path / "one", tmp_path / "two"
    assert vqvideo_main(["eval", *eval_args(checkpoints, single, tmp_path / "index", *OPTIONS)]) == 0
    args = eval_args(checkpoints, double, tmp_path / "index", *OPTIONS, "--trainer.devices=2",
                     "--trainer.strategy=ddp")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-m", "vqvideo.cli", "eval", *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((double / "report.json").read_text())["run"]["devices"] == 2
    assert comparable_report(double) == comparable_report(single)
    assert_same_videos(single, double)
