"""`vqvideo eval` end to end on tiny checkpoints with a randomly initialised I3D: the folder layout the human-eval kit
relies on, the report's sections (stand-in FVD labelled meaningless in json, md and html; x264 and per-level
diagnostics present and sane), and an index.html that links only files that exist."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from eval_helpers import NUM_FRAMES, RESOLUTION, eval_args, save_tiny_stages
from tiny_models import NUM_BOTTOM_CODES, NUM_TOP_CODES, TINY_SPEC

from vqvideo.cli import main as vqvideo_main
from vqvideo.evaluation.tables import STAND_IN_LABEL

NUM_SAMPLES = 2
SYSTEMS = ["copy_last", "reconstruction", "sample_0", "sample_1", "truth"]


@pytest.fixture(scope="module")
def stand_in_eval(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("eval")
    checkpoints = save_tiny_stages(root)
    out = root / "out"
    args = eval_args(checkpoints, out, root / "index", "--i3d=random", "--num_clips=2",
                     f"--num_samples={NUM_SAMPLES}", "--folds=1", "--batch_size=2")
    assert vqvideo_main(["eval", *args]) == 0
    return out


def decoded(path: Path) -> tuple[int, int, int]:
    with av.open(str(path)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    return len(frames), *frames[0].shape[:2]


def test_layout_every_system_has_every_clip_at_one_length_and_size(stand_in_eval):
    report = json.loads((stand_in_eval / "report.json").read_text())
    names = [clip["name"] for clip in report["clips"]["list"]]
    assert len(names) == 2 and all(re.fullmatch(r".+_f\d+", name) for name in names)
    assert sorted(path.name for path in (stand_in_eval / "videos").iterdir()) == SYSTEMS
    for system in SYSTEMS:
        assert sorted(path.stem for path in (stand_in_eval / "videos" / system).glob("*.mp4")) == sorted(names)
        for name in names:
            assert decoded(stand_in_eval / "videos" / system / f"{name}.mp4") == (NUM_FRAMES, RESOLUTION, RESOLUTION)
    for name in names:
        codes = np.load(stand_in_eval / "codes" / f"{name}.npz")
        assert codes["top"].shape == TINY_SPEC.top_shape and codes["bottom"].shape == TINY_SPEC.bottom_shape
        assert codes["sample_top"].shape == (NUM_SAMPLES, 1, *TINY_SPEC.top_shape)
        assert (codes["sample_top"][:, :, :1] == codes["sample_given_top"]).all()
    assert {path.name for path in (stand_in_eval / "plots").iterdir()} == {
        "frame_psnr.png", "frame_ssim.png", "codebook_usage.png"}


def test_stand_in_fvd_is_computed_and_labelled_meaningless_everywhere(stand_in_eval):
    report = json.loads((stand_in_eval / "report.json").read_text())
    fvd = report["fvd"]
    assert fvd["status"] == "computed" and fvd["stand_in_weights"] is True
    assert "meaningless" in fvd["weights_label"] and fvd["card"]["i3d_sha256"] is None
    assert fvd["card"]["real_count"] == 2 and fvd["card"]["fake_count"] == 2 * NUM_SAMPLES
    # 32 px clips: FVD at their own size only (never upscaled to the paper's 64), first window only
    assert [(result["resolution"], result["window_start"]) for result in fvd["results"]] == [(RESOLUTION, 0)]
    for metric in ("fvd", "fvd_star"):
        assert math.isfinite(fvd["results"][0][metric]["mean"]) and fvd["results"][0][metric]["mean"] > 0
    assert set(fvd["skipped_resolutions"]) == {"64", "256"}
    markdown, html = (stand_in_eval / "report.md").read_text(), (stand_in_eval / "index.html").read_text()
    fvd_text = fvd["results"][0]["fvd"]["text"]
    for text in (markdown, html):
        assert f"{fvd_text} ({STAND_IN_LABEL})" in text
        assert text.count(fvd_text) == text.count(f"{fvd_text} ({STAND_IN_LABEL})")  # never without the label
    assert report["run"]["timings"]["feature_videos"] == 2 * (2 + NUM_SAMPLES)


def test_frame_quality_compression_and_levels_are_present_and_sane(stand_in_eval):
    report = json.loads((stand_in_eval / "report.json").read_text())
    quality = report["frame_quality"]
    assert quality["frames"] == list(range(4, NUM_FRAMES))
    for system in ("sample_mean", "sample_best", "copy_last", "reconstruction"):
        for metric, low, high in (("psnr", 0, 100), ("ssim", -1, 1)):
            score = quality["systems"][system][metric]
            assert len(score["per_frame"]) == NUM_FRAMES - 4 and len(score["per_clip"]) == 2
            assert low < score["mean"] <= high
    best, mean = quality["systems"]["sample_best"], quality["systems"]["sample_mean"]
    assert best["psnr"]["mean"] >= mean["psnr"]["mean"] and best["ssim"]["mean"] >= mean["ssim"]["mean"]
    compression = report["compression"]
    expected_bits = 4 * 4 * 4 * math.log2(NUM_TOP_CODES) + 8 * 8 * 8 * math.log2(NUM_BOTTOM_CODES)
    assert compression["budget_bits"] == pytest.approx(expected_bits)
    assert 0 < compression["x264_bits"] <= compression["budget_bits"] and compression["x264_header_bits"] > 0
    assert 10 < compression["x264_psnr"] < 60 and 0 < compression["vqvae_psnr"] < 60
    levels = report["levels"]
    for level, size in (("top", NUM_TOP_CODES), ("bottom", NUM_BOTTOM_CODES)):
        entry = levels[level]
        assert 1 <= entry["codes"]["used"] <= size and len(entry["codes"]["histogram"]) == size
        assert 1 <= entry["codes"]["perplexity"] <= size and sum(entry["sampled_codes"]["histogram"]) > 0
        assert entry["uniform_bits_per_code"] == pytest.approx(math.log2(size))
        assert 0 < entry["prior_bits_per_code"] < 3 * math.log2(size)  # an untrained prior: near uniform
        assert 0 <= entry["unigram_bits_per_code"] <= math.log2(size)
    assert isinstance(levels["top_level_carries_content"], bool) and levels["mean_colour_psnr"] > 0
    assert report["checkpoints"]["vqvae"]["sha256"] == report["settings"]["checkpoints_sha256"]["vqvae"]
    assert report["versions"]["torch"] and report["paper_table2"]["rows"][3]["mean"] == 64.30


def test_html_links_only_files_that_exist(stand_in_eval):
    html = (stand_in_eval / "index.html").read_text()
    links = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len([link for link in links if link.endswith(".mp4")]) == 2 * len(SYSTEMS)
    assert len([link for link in links if link.endswith(".png")]) == 3
    gifs = [link for link in links if link.endswith(".gif")]  # one [ground truth | samples] panel per clip shown
    assert len(gifs) == 2 and Image.open(stand_in_eval / gifs[0]).n_frames == 16
    for link in links:
        assert not link.startswith(("/", "http:", "https:", "file:")) and ".." not in link
        assert (stand_in_eval / link).is_file(), link
    markdown_links = re.findall(r"\]\(([^)]+)\)", (stand_in_eval / "report.md").read_text())
    assert markdown_links and all((stand_in_eval / link).is_file() for link in markdown_links)


def test_the_human_eval_kit_pairs_an_eval_folder(stand_in_eval, tmp_path):
    from vqvideo.human_eval.pairs import make_pairs

    result = make_pairs(stand_in_eval, stand_in_eval, tmp_path / "pairs", b_system="copy_last", progress=False)
    assert result.num_pairs == 2 and not result.only_a and not result.only_b


def test_prediction_diagnostics_are_reported(stand_in_eval):
    report = json.loads((stand_in_eval / "report.json").read_text())
    diagnostics = report["diagnostics"]
    for level, num_slices, num_given in (("top", 4, 1), ("bottom", 8, 2)):
        stability = diagnostics[level]["stability"]
        assert len(stability["changed_share_per_step"]) == num_slices - 1
        assert 0 <= stability["changed_share"] <= 1 and 0 <= stability["sampled_changed_share"] <= 1
        assert len(stability["given_alone_agreement_per_slice"]) == num_given
        own, swapped = diagnostics[level]["bits_per_slice"], diagnostics[level]["bits_per_slice_swapped"]
        assert len(own) == len(swapped) == num_slices - num_given and all(bits > 0 for bits in own + swapped)
    # per-slice teacher-forced bits of the top prior average to the levels table's bits/code (same clips, same codes)
    top_bits = diagnostics["top"]["bits_per_slice"]
    assert sum(top_bits) / len(top_bits) == pytest.approx(report["levels"]["top"]["prior_bits_per_code"], rel=1e-4)
    assert len(diagnostics["sample_vs_reconstruction_psnr_per_frame"]) == NUM_FRAMES
    assert len(diagnostics["copied_codes_psnr_per_frame"]) == NUM_FRAMES - TINY_SPEC.num_given_frames
    assert "The priors against copying the given codes" in (stand_in_eval / "index.html").read_text()
    spread = diagnostics["sample_spread"]  # the samples' error split into the prior's spread and bias, every frame
    assert len(spread["spread_psnr"]) == NUM_FRAMES
    assert all(len(spread[target][row]) == NUM_FRAMES for target in ("truth", "reconstruction")
               for row in ("samples_psnr", "mean_psnr", "bias_to_spread"))
    assert "spread and its bias" in (stand_in_eval / "index.html").read_text()
    assert "Prediction diagnostics" in (stand_in_eval / "index.html").read_text()
