"""An eval stopped part-way — by an error after some batches, or by a real SIGKILL — finishes with the same command and
gives the same report.json as an uninterrupted run (all but its `run` section: command line, devices, timings).
Another command into the same folder is refused unless --overwrite."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from eval_helpers import assert_same_videos, comparable_report, eval_args, save_tiny_stages

from vqvideo.cli import main as vqvideo_main
import vqvideo.evaluation.writer as eval_writer
from vqvideo.files import TEMP_SUFFIX

OPTIONS = ("--num_clips=3", "--num_samples=2", "--batch_size=1", "--seed=7")


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("resume")
    checkpoints = save_tiny_stages(root)
    reference = root / "reference"
    assert vqvideo_main(["eval", *eval_args(checkpoints, reference, root / "index", *OPTIONS)]) == 0
    return {"root": root, "checkpoints": checkpoints, "reference": reference}


def run(setup: dict, out: Path, *extra: str) -> int:
    return vqvideo_main(["eval", *eval_args(setup["checkpoints"], out, setup["root"] / "index", *OPTIONS, *extra)])


class SimulatedCrash(RuntimeError):
    pass


def test_crash_after_one_batch_then_resume_equals_uninterrupted(setup, tmp_path, monkeypatch):
    real_write_clip, calls = eval_writer.write_clip, []

    def crash_on_second_clip(out, clip, output, spec):
        calls.append(clip.name)
        if len(calls) == 2:  # half-written: one video and a leftover temp file, no record
            (out / "videos" / "truth").mkdir(parents=True, exist_ok=True)
            (out / "videos" / "truth" / f".{clip.name}.mp4.999{TEMP_SUFFIX}").write_bytes(b"partial")
            raise SimulatedCrash("killed while writing the second clip")
        return real_write_clip(out, clip, output, spec)

    out = tmp_path / "eval"
    monkeypatch.setattr(eval_writer, "write_clip", crash_on_second_clip)
    with pytest.raises(SimulatedCrash):
        run(setup, out)
    assert not (out / "report.json").exists() and len(list((out / "results").glob("*.npz"))) == 1
    monkeypatch.setattr(eval_writer, "write_clip", real_write_clip)
    assert run(setup, out) == 0
    assert comparable_report(out) == comparable_report(setup["reference"])
    assert not list(out.rglob(f".*{TEMP_SUFFIX}"))
    assert_same_videos(out, setup["reference"])


def test_a_finished_eval_rebuilds_its_report_without_sampling(setup, tmp_path, capsys):
    out = tmp_path / "eval"
    assert run(setup, out) == 0
    (out / "report.json").unlink()
    assert run(setup, out) == 0
    assert "already scored" in capsys.readouterr().out
    assert comparable_report(out) == comparable_report(setup["reference"])


def test_another_command_into_the_same_folder_is_refused_unless_overwrite(setup, tmp_path, capsys):
    out = tmp_path / "eval"
    assert run(setup, out) == 0
    capsys.readouterr()
    assert run(setup, out, "--temperature=0.5") == 2
    error = capsys.readouterr().err
    assert "sampling.temperature: 1.0 → 0.5" in error and "--overwrite" in error
    assert run(setup, out, "--temperature=0.5", "--overwrite") == 0
    assert json.loads((out / "run.json").read_text())["sampling"]["temperature"] == 0.5


@pytest.mark.slow
def test_sigkill_mid_eval_then_the_same_command_resumes_to_the_same_report(setup, tmp_path):
    out = tmp_path / "eval"
    args = eval_args(setup["checkpoints"], out, setup["root"] / "index", *OPTIONS)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    process = subprocess.Popen([sys.executable, "-m", "vqvideo.cli", "eval", *args], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list((out / "results").glob("*.npz")) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / "report.json").exists(), "the eval finished before it could be killed"
    assert run(setup, out) == 0
    assert comparable_report(out) == comparable_report(setup["reference"])
    assert_same_videos(out, setup["reference"])
