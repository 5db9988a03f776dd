"""`vqvideo eval --num_frames N` beyond the VQ-VAE's clip length: every video and per-frame curve spans the N frames
(rollout windows marked), and with an I3D, FVD is given per clip-length window (checked on synthetic records: the
stand-in I3D on real runs is exercised by test_eval_command.py)."""

from __future__ import annotations

import json

import numpy as np
from eval_helpers import RESOLUTION, decoded_frames, eval_args, save_tiny_stages
from PIL import Image

from vqvideo.cli import main as vqvideo_main
from vqvideo.evaluation.plots import fvd_windows as plot_fvd_windows
from vqvideo.evaluation.report import PAPER_TABLE_2
from vqvideo.evaluation.setup import fvd_windows
from vqvideo.evaluation.summary import EvalSettings, FVDSetup, fvd_section
from vqvideo.evaluation.tables import STAND_IN_LABEL, fvd_tables

NUM_FRAMES = 24  # windows start at frames 0 and 12: the second adds frames 16..23


def test_rollout_curves_and_videos_span_all_frames(tmp_path):
    checkpoints = save_tiny_stages(tmp_path)
    out = tmp_path / "eval"
    args = eval_args(checkpoints, out, tmp_path / "index", f"--num_frames={NUM_FRAMES}", "--num_clips=2",
                     "--num_samples=2", "--batch_size=2")
    assert vqvideo_main(["eval", *args]) == 0
    report = json.loads((out / "report.json").read_text())
    quality = report["frame_quality"]
    assert quality["frames"] == list(range(4, NUM_FRAMES))  # every predicted frame, up to the last
    assert quality["window_first_new_frames"] == [4, 16]
    for system in quality["systems"].values():
        assert len(system["psnr"]["per_frame"]) == len(system["ssim"]["per_frame"]) == NUM_FRAMES - 4
    for video in (out / "videos").rglob("*.mp4"):
        assert decoded_frames(video).shape == (NUM_FRAMES, RESOLUTION, RESOLUTION, 3), video
    name = report["clips"]["list"][0]["name"]
    codes = np.load(out / "codes" / f"{name}.npz")
    assert codes["sample_top"].shape[:2] == (2, 2)  # (samples, windows)
    # the second window is given the first window's last 4 frames: the given codes of the two windows differ
    assert not np.array_equal(codes["sample_given_bottom"][:, 0], codes["sample_given_bottom"][:, 1])
    assert "a rollout of 2 windows" in report["protocol"]["prediction"]
    assert Image.open(out / "plots" / "frame_psnr.png").size[0] > 300


def test_fvd_windows_cover_the_rollout_and_end_at_its_last_frame():
    assert fvd_windows(16, 16, [0]) == (0,)
    assert fvd_windows(40, 16, [0, 12, 24]) == (0, 12, 24)
    assert fvd_windows(30, 16, [0, 12, 24]) == (0, 12, 14)  # the last window moved back to end at frame 29


def synthetic_records(num_clips: int, num_samples: int, windows: tuple[int, ...], seed: int = 0) -> list[dict]:
    """Records holding only I3D features: truth, reconstruction (truth + a little noise) and samples drifting away
    from the truth window after window."""
    generator = np.random.default_rng(seed)
    records = []
    for _ in range(num_clips):
        record = {}
        for window_index, start in enumerate(windows):
            truth = generator.normal(size=(1, 8))
            record[f"features.64.truth.{start}"] = truth
            record[f"features.64.reconstruction.{start}"] = truth + 0.1 * generator.normal(size=(1, 8))
            drift = 1.0 + 2.0 * window_index
            record[f"features.64.sample.{start}"] = truth + drift * generator.normal(size=(num_samples, 8))
        records.append(record)
    return records


def test_fvd_per_window_with_folds_tables_and_plot(tmp_path):
    windows = (0, 12, 24)
    card = {"stand_in_weights": True, "weights_label": "STAND-IN: meaningless", "i3d_sha256": None}
    settings = EvalSettings(4, 16, 40, 3, 64, windows, {"top": 16, "bottom": 16}, 100.0,
                            FVDSetup((64,), windows, 2, card))
    section = fvd_section(synthetic_records(8, 3, windows), settings)
    assert section["status"] == "computed" and section["card"]["real_count"] == 8
    assert [result["window_start"] for result in section["results"]] == list(windows)
    means = [result["fvd"]["mean"] for result in section["results"]]
    assert means[0] < means[1] < means[2]  # drift is a number
    for result in section["results"]:
        assert len(result["fvd"]["per_fold"]) == 2 and result["fvd"]["std"] is not None
        assert result["fvd_star"]["mean"] > 0
    report = {"fvd": section, "paper_table2": PAPER_TABLE_2}
    tables = {table.key: table for table in fvd_tables(report)}
    assert len(tables["fvd_windows"].rows) == 3 and tables["fvd_windows"].rows[2][0] == "24–39"
    assert all(STAND_IN_LABEL in cell for row in tables["fvd_windows"].rows for cell in row[2:])
    paper_rows = [row for row in tables["fvd"].rows if row[0] == "Video VQ-VAE" and row[1] == "64×64"]
    assert [row[4] for row in paper_rows] == [f"{section['results'][0][m]['text']} ({STAND_IN_LABEL})"
                                              for m in ("fvd", "fvd_star")]
    plot_fvd_windows(report, tmp_path / "fvd.png")
    assert Image.open(tmp_path / "fvd.png").size[0] > 300


def test_too_few_clips_for_the_folds_is_reported_not_raised():
    card = {"stand_in_weights": False, "weights_label": "Kinetics-400 I3D from x.pt", "i3d_sha256": "0"}
    settings = EvalSettings(4, 16, 16, 2, 64, (0,), {"top": 16, "bottom": 16}, 100.0, FVDSetup((64,), (0,), 2, card))
    section = fvd_section(synthetic_records(3, 2, (0,)), settings)
    assert section["status"] == "not computed" and "2 folds need at least 4" in section["reason"]
    assert section["results"] == []
    rows = fvd_tables({"fvd": section, "paper_table2": PAPER_TABLE_2})[0].rows
    assert all(row[4].startswith("not computed: 2 folds") for row in rows if row[0] == "Video VQ-VAE")
