"""One decoder decides: the index probes with decord2 (the reader clips use), keeps the frames it reads exactly as
PyAV presents them (a lying header, a damaged end, an open GOP), and clips are the frames PyAV decodes."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from codec_videos import (cut_mp4, cut_packet_mp4, h264, open_gop_h265, overstating_avi, pyav_frames)

from vqvideo.cli import main as vqvideo_main
from vqvideo.data import index as index_module
from vqvideo.data.datamodule import KineticsDataModule
from vqvideo.data.video import FrameSize, KnownSource, decode_frames, decoder_version, read_clip, resize_frames

NATIVE = FrameSize(48, 64)


def test_decord_is_decord2():
    import decord

    assert int(decord.__version__.split(".")[0]) >= 3, f"decord {decord.__version__}: install decord2>=3.4"
    assert decoder_version() == f"decord {decord.__version__}"


@pytest.mark.parametrize("name", ["g12.avi", "g12.mp4"])
def test_clips_are_the_frames_pyav_decodes_with_or_without_timestamps(tmp_path, name):
    """H.264 in AVI has no presentation timestamps: decord's seek lands a GOP early there (frame 12 read as
    frame 0), so such files are read in order. The MP4 (timestamps) is read by seeking."""
    path = h264(tmp_path / name, 60, keyint=12)
    reference = np.stack(pyav_frames(path))
    for start in (0, 11, 12, 13, 30, 48):  # before, on and after keyframes
        frames = decode_frames(str(path), list(range(start, start + 8)), NATIVE)
        assert np.array_equal(frames.numpy(), reference[start:start + 8]), f"{name}: window at frame {start}"
    strided = decode_frames(str(path), [50, 13, 25], NATIVE)  # any order, any stride
    assert np.array_equal(strided.numpy(), reference[[50, 13, 25]])


def test_output_widths_decord_cannot_copy_out_are_decoded_one_pixel_wider(tmp_path):
    path = h264(tmp_path / "square.mp4", 10)
    for size in (FrameSize(24, 32), FrameSize(48, 48), FrameSize(16, 96)):  # widths decord2 fails to copy
        frames = decode_frames(str(path), [0, 5], size)
        wider = decode_frames(str(path), [0, 5], FrameSize(size.height, size.width + 1))
        assert frames.shape == (2, size.height, size.width, 3)
        assert torch.equal(frames, resize_frames(wider, size))
    assert read_clip(str(path), 0, 4, resolution=32, source=KnownSource(32, 32)).shape == (3, 4, 32, 32)


@pytest.fixture(scope="module")
def mixed_root(tmp_path_factory):
    """Files whose headers lie, damaged files, an open-GOP file and a too-short one (a plain folder)."""
    root = tmp_path_factory.mktemp("mixed")
    overstating_avi(root / "overstated.avi", num_frames=40, header_frames=160)
    cut_mp4(root / "cut_between_packets.mp4", num_frames=120, keep=60, mid_packet=False)
    cut_mp4(root / "cut_inside_a_packet.mp4", num_frames=120, keep=60, mid_packet=True)
    cut_packet_mp4(root / "damaged_packet.mp4")
    open_gop_h265(root / "open_gop.mp4")
    overstating_avi(root / "short.avi", num_frames=6, header_frames=60)
    return root


def test_index_keeps_what_decodes_and_lists_every_file(mixed_root, tmp_path, capsys):
    code = vqvideo_main(["data-summary", str(mixed_root), "--num_frames", "8", "--val_fraction", "0.5", "--json",
                         "--index_cache_dir", str(tmp_path / "index")])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and summary["videos"] == 6
    skipped = {s["path"].split("/")[-1]: s["reason"] for s in summary["skipped"]}
    assert skipped.keys() == {"short.avi"}, skipped
    assert skipped["short.avi"].startswith("too short: 6 frames decode (its header promises 60)")
    files = {f["path"].split("/")[-1]: (f["frames"], f["header_frames"]) for f in summary["files"]}
    assert files == {"overstated.avi": (40, 160), "cut_between_packets.mp4": (60, 120),
                     "cut_inside_a_packet.mp4": (60, 120), "damaged_packet.mp4": (45, 60),
                     "open_gop.mp4": (60, 60), "short.avi": (6, 60)}
    assert summary["readable"] == 6


def test_a_lying_header_gives_one_warning_naming_both_counts(mixed_root, tmp_path):
    dm = KineticsDataModule(root=str(mixed_root), num_frames=8, val_fraction=0.5, num_workers=0,
                            index_cache_dir=str(tmp_path / "index"), progress=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dm.setup("fit")
    overstated = [str(w.message) for w in caught if "overstated.avi" in str(w.message)]
    assert overstated == [f"video {mixed_root / 'overstated.avi'}: its header promises 160 frames, 40 decode; "
                          "using the 40"]
    entry = next(e for e in dm.index.entries if e.rel_path == "overstated.avi")
    clip = dm.dataset("train" if entry.split == "train" else "val", train=False)
    assert entry.num_frames == 40 and len([w for w in clip.windows if dm.index.entries[w.video_index] == entry]) == 5


def test_index_written_by_an_older_probe_or_decoder_is_probed_again(tmp_path, monkeypatch):
    folder = tmp_path / "videos"
    overstating_avi(folder / "a.avi", num_frames=16, header_frames=64)
    cache_dir = str(tmp_path / "index")
    first = index_module.build_index(str(folder), cache_dir=cache_dir, progress=False)
    probed = []
    real_probe = index_module.probe_video
    monkeypatch.setattr(index_module, "probe_video", lambda path: probed.append(path) or real_probe(path))
    cache_file = first.cache_path
    for stale in ({"version": 1}, {"decoder": "decord 0.6.0"}):
        payload = json.loads(Path(cache_file).read_text())
        payload["rows"][0]["num_frames"] = 64  # what the old probe believed
        Path(cache_file).write_text(json.dumps(payload | stale))
        again = index_module.build_index(str(folder), cache_dir=cache_dir, progress=False)
        assert probed == [str(folder / "a.avi")] and again.entries[0].num_frames == 16, stale
        probed.clear()
    reused = index_module.build_index(str(folder), cache_dir=cache_dir, progress=False)
    assert probed == [] and reused.entries == first.entries
