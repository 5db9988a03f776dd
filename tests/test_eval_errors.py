"""`vqvideo eval` refuses bad input before any sampling, with one message naming the file or value and the fix;
`--split all` scores every file of a folder the hash split would leave out."""

from __future__ import annotations

import json

import pytest
from data_videos import source_frames, write_video
from eval_helpers import eval_args, save_tiny_stages
from tiny_models import save_checkpoint, tiny_code_spec, tiny_top_module

from vqvideo.cli import main as vqvideo_main
from vqvideo.data.sources import hash_split


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("errors")
    stages = save_tiny_stages(root)
    stages["other_top"] = save_checkpoint(tiny_top_module(tiny_code_spec(num_top_codes=32)), root / "other_top.ckpt")
    (root / "empty").mkdir()
    (root / "junk").mkdir()
    (root / "junk" / "notes.mp4").write_text("not a video")
    (root / "weights.pt").write_bytes(b"not a state dict")
    stages["root"] = root
    return stages


def run_failing(checkpoints, tmp_path, capsys, *extra: str, **replaced) -> str:
    stages = {**checkpoints, **replaced}
    args = eval_args(stages, tmp_path / "out", checkpoints["root"] / "index", "--num_clips=1", *extra)
    assert vqvideo_main(["eval", *args]) == 2
    error = capsys.readouterr().err
    messages = [line for line in error.splitlines() if line.startswith("vqvideo eval: ")]
    assert len(messages) == 1 and "Traceback" not in error, error
    assert not (tmp_path / "out" / "results").exists()  # nothing was sampled
    return messages[0]


def test_missing_checkpoint(checkpoints, tmp_path, capsys):
    message = run_failing(checkpoints, tmp_path, capsys, vqvae=tmp_path / "nope.ckpt")
    assert "nope.ckpt does not exist" in message


def test_a_prior_passed_as_the_vqvae(checkpoints, tmp_path, capsys):
    message = run_failing(checkpoints, tmp_path, capsys, vqvae=checkpoints["top"])
    assert "top_prior.ckpt records no clip_shape" in message


def test_a_prior_trained_on_another_vqvae(checkpoints, tmp_path, capsys):
    message = run_failing(checkpoints, tmp_path, capsys, top=checkpoints["other_top"])
    assert "other_top.ckpt was trained on num_top_codes 32" in message


@pytest.mark.parametrize("root, words", [("missing", "missing"), ("empty", "No video files"),
                                          ("junk", "No readable video")])
def test_bad_data_root(checkpoints, tmp_path, capsys, root, words):
    message = run_failing(checkpoints, tmp_path, capsys, f"--data.root={checkpoints['root'] / root}")
    assert words in message and str(checkpoints["root"] / root) in message


def test_bad_i3d_file_and_too_few_frames(checkpoints, tmp_path, capsys):
    message = run_failing(checkpoints, tmp_path, capsys, f"--i3d={checkpoints['root'] / 'weights.pt'}")
    assert "weights.pt" in message and "i3d_pretrained_400.pt" in message
    message = run_failing(checkpoints, tmp_path, capsys, "--num_frames=8")
    assert "at least 16 frames" in message


def test_a_folder_with_no_file_in_the_split_names_split_all(checkpoints, tmp_path, capsys):
    names = [name for name in (f"held_out_{i}.mp4" for i in range(100)) if hash_split(name, 0.5) == "train"][:2]
    for name in names:  # the hash split puts both in train: the default --split val has nothing
        write_video(tmp_path / "folder" / name, source_frames(24, which=2), width=32, height=32)
    message = run_failing(checkpoints, tmp_path, capsys, f"--data.root={tmp_path / 'folder'}")
    assert "split 'val'" in message and "--split all" in message


def test_split_all_scores_every_file_of_a_folder(checkpoints, tmp_path):
    folder = tmp_path / "folder"
    for number in range(3):
        write_video(folder / f"held_out_{number}.mp4", source_frames(24, which=number), width=32, height=32)
    args = eval_args(checkpoints, tmp_path / "out", tmp_path / "index", f"--data.root={folder}", "--split=all",
                     "--num_samples=1")
    assert vqvideo_main(["eval", *args]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["settings"]["data"]["split"] == "all" and report["clips"]["failed"] == []
    assert {clip["rel_path"] for clip in report["clips"]["list"]} == {f"held_out_{n}.mp4" for n in range(3)}
