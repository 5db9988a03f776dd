"""make-pairs: eval folders and plain folders paired by stem, mismatches refused, a blinded pair set written."""

from __future__ import annotations

import fnmatch
import json
import re
from importlib import resources
from pathlib import Path

import pytest

from human_eval_helpers import CLIPS, NAMES, moving_square, write_fake_eval
from vqvideo.human_eval.pairs import PairsError, make_pairs, read_pair_set
from vqvideo.video_io import write_mp4

OPAQUE = re.compile(r"videos/[0-9a-f]{16}\.mp4")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def eval_dir(tmp_path_factory) -> Path:
    return write_fake_eval(tmp_path_factory.mktemp("eval") / "eval")


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def test_eval_folders_pair_sample_0_by_default_with_the_named_system(eval_dir, tmp_path):
    result = make_pairs(eval_dir, eval_dir, tmp_path / "pairs", names=NAMES, b_system="copy_last", progress=False)
    assert (result.num_pairs, result.only_a, result.only_b, result.unchanged) == (len(CLIPS), [], [], False)
    written = manifest(tmp_path / "pairs")
    assert [written["systems"][side]["name"] for side in ("a", "b")] == NAMES.split(",")
    assert [p["pair_id"] for p in written["pairs"]] == sorted(CLIPS)
    for record in written["pairs"]:
        assert OPAQUE.fullmatch(record["a"]) and OPAQUE.fullmatch(record["b"]) and record["a"] != record["b"]
        stem = record["pair_id"]
        assert (tmp_path / "pairs" / record["a"]).read_bytes() == (eval_dir / f"videos/sample_0/{stem}.mp4").read_bytes()
        assert (tmp_path / "pairs" / record["b"]).read_bytes() == (eval_dir / f"videos/copy_last/{stem}.mp4").read_bytes()
        assert (record["num_frames"], record["width"], record["height"]) == (8, 64, 48)
    assert sorted(p.name for p in (tmp_path / "pairs" / "videos").iterdir()) == \
           sorted(Path(r[s]).name for r in written["pairs"] for s in ("a", "b"))
    other = make_pairs(eval_dir, eval_dir, tmp_path / "other", a_system="sample_1", progress=False)
    names = manifest(tmp_path / "other")["systems"]
    assert (names["a"]["name"], names["b"]["name"]) == ("eval/sample_1", "eval/sample_0")
    assert other.pair_set_id != result.pair_set_id


def test_plain_folders_pair_by_stem_and_one_sided_stems_are_reported(tmp_path):
    for side, stems in (("a", ["x", "y", "z"]), ("b", ["y", "z", "w"])):
        for k, stem in enumerate(stems):
            write_mp4(tmp_path / side / f"{stem}.mp4", moving_square(6, 32, 32, k + 10 * (side == "b")))
    (tmp_path / "a" / "notes.txt").write_text("not a video")
    result = make_pairs(tmp_path / "a", tmp_path / "b", tmp_path / "pairs", progress=False)
    assert (result.num_pairs, result.only_a, result.only_b) == (2, ["x"], ["w"])
    written = manifest(tmp_path / "pairs")
    assert [p["pair_id"] for p in written["pairs"]] == ["y", "z"]
    assert (written["only_in_a"], written["only_in_b"]) == (["x"], ["w"])
    assert (written["systems"]["a"]["name"], written["systems"]["b"]["name"]) == ("a", "b")


@pytest.mark.parametrize("problem", ["frames", "size"])
def test_pairs_differing_in_frame_count_or_resolution_are_refused_naming_both_files(tmp_path, problem):
    for side in ("a", "b"):
        write_mp4(tmp_path / side / "good.mp4", moving_square(8, 32, 32, 1))
    frames, width = (6, 32) if problem == "frames" else (8, 48)
    write_mp4(tmp_path / "a" / "clip.mp4", moving_square(8, 32, 32, 2))
    write_mp4(tmp_path / "b" / "clip.mp4", moving_square(frames, width, 32, 3))
    with pytest.raises(PairsError) as err:
        make_pairs(tmp_path / "a", tmp_path / "b", tmp_path / "pairs", progress=False)
    message = str(err.value)
    assert str(tmp_path / "a" / "clip.mp4") in message and str(tmp_path / "b" / "clip.mp4") in message
    assert f"{frames} frames, {width}x32" in message and "good.mp4" not in message
    assert not (tmp_path / "pairs").exists()


def test_bad_arguments_are_refused_with_the_fix(eval_dir, tmp_path):
    plain = tmp_path / "plain"
    write_mp4(plain / "other.mp4", moving_square(8, 64, 48, 0))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / f"{CLIPS[0]}.mp4").write_text("not a video at all")
    cases = [
        (dict(a=plain, b=eval_dir, a_system="copy_last"), "drop --a_system"),
        (dict(a=eval_dir, b=eval_dir, b_system="sample_9"), "'copy_last', 'reconstruction', 'sample_0'"),
        (dict(a=tmp_path / "missing", b=eval_dir), "no such folder"),
        (dict(a=plain, b=eval_dir), "no file stem is in both"),
        (dict(a=eval_dir, b=eval_dir, b_system="copy_last", names="one"), "two different"),
        (dict(a=eval_dir, b=eval_dir, b_system="copy_last", names="a,a"), "two different"),
        (dict(a=eval_dir, b=eval_dir, b_system="copy_last", names="a,b,c"), "two different"),
        (dict(a=eval_dir, b=eval_dir), "two different"),  # both sides eval/sample_0 and no --names
        (dict(a=tmp_path / "broken", b=eval_dir), "not a readable video"),
    ]
    for kwargs, message in cases:
        with pytest.raises(PairsError, match=re.escape(message)):
            make_pairs(out=tmp_path / "pairs", progress=False, **kwargs)
    assert not (tmp_path / "pairs").exists()


def test_rerun_is_unchanged_and_another_pair_set_needs_overwrite(eval_dir, tmp_path):
    out = tmp_path / "pairs"
    first = make_pairs(eval_dir, eval_dir, out, names=NAMES, b_system="copy_last", progress=False)
    before = (out / "manifest.json").read_bytes()
    again = make_pairs(eval_dir, eval_dir, out, names=NAMES, b_system="copy_last", progress=False)
    assert again.unchanged and again.pair_set_id == first.pair_set_id and (out / "manifest.json").read_bytes() == before
    with pytest.raises(PairsError, match="--overwrite"):
        make_pairs(eval_dir, eval_dir, out, names=NAMES, b_system="sample_1", progress=False)
    assert (out / "manifest.json").read_bytes() == before
    replaced = make_pairs(eval_dir, eval_dir, out, names=NAMES, b_system="sample_1", overwrite=True, progress=False)
    assert replaced.pair_set_id != first.pair_set_id and not replaced.unchanged
    listed = {Path(r[s]).name for r in manifest(out)["pairs"] for s in ("a", "b")}
    assert {p.name for p in (out / "videos").iterdir()} == listed  # the copy_last videos are gone
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "thesis.tex").write_text("keep me")
    with pytest.raises(PairsError, match="not empty"):
        make_pairs(eval_dir, eval_dir, tmp_path / "busy", names=NAMES, b_system="copy_last", progress=False)


def test_read_pair_set_refuses_incomplete_or_edited_pair_sets(eval_dir, tmp_path):
    with pytest.raises(PairsError, match="make-pairs"):
        read_pair_set(tmp_path / "nothing")
    out = tmp_path / "pairs"
    make_pairs(eval_dir, eval_dir, out, names=NAMES, b_system="copy_last", progress=False)
    pair_set = read_pair_set(out)
    assert pair_set.names == tuple(NAMES.split(",")) and len(pair_set.pairs) == len(CLIPS)
    edited = manifest(out)
    edited["systems"]["a"]["name"] = "renamed"
    (out / "manifest.json").write_text(json.dumps(edited))
    with pytest.raises(PairsError, match="does not match"):
        read_pair_set(out)
    make_pairs(eval_dir, eval_dir, out, names=NAMES, b_system="copy_last", overwrite=True, progress=False)
    next((out / "videos").iterdir()).unlink()
    with pytest.raises(PairsError, match="missing"):
        read_pair_set(out)


def test_the_page_files_are_package_data():
    """`pip install` (not only an editable checkout) must ship the page: every static file matches a glob."""
    section = (REPO / "pyproject.toml").read_text().split("[tool.setuptools.package-data]")[1]
    globs = json.loads(re.search(r'^"vqvideo\.human_eval" = (\[.*\])$', section, re.MULTILINE).group(1))
    static = resources.files("vqvideo.human_eval") / "static"
    names = sorted(entry.name for entry in static.iterdir())
    assert {"index.html", "app.js", "style.css"} <= set(names)
    for name in names:
        assert any(fnmatch.fnmatch(f"static/{name}", pattern) for pattern in globs), name
