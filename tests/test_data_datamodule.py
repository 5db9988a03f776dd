"""KineticsDataModule on the bundled clips and on a Kinetics-layout tree with bad files mixed in;
the cached index; `vqvideo data-summary --json`."""

import json
import pickle
import warnings

import pytest
import torch

from data_videos import make_kinetics_tree, source_frames, write_video
from vqvideo.cli import main as vqvideo_main
from vqvideo.data import index as index_module
from vqvideo.data.datamodule import KineticsDataModule, NoReadableVideoError
from vqvideo.data.dataset import ClipSpec
from vqvideo.data.sources import embedded_clips, hash_split, list_source
from vqvideo.data.video import GpuDecodeUnavailable


@pytest.fixture(scope="module")
def kinetics_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("kinetics")
    return root, make_kinetics_tree(root)


def make_dm(tmp_path, **kwargs):
    kwargs = {"num_workers": 0, "index_cache_dir": str(tmp_path / "index"), "progress": False, **kwargs}
    dm = KineticsDataModule(**kwargs)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_default_datamodule_serves_the_bundled_clips(tmp_path):
    dm = make_dm(tmp_path, batch_size=4, num_workers=1)  # decoding happens in a worker process
    assert [e.rel_path for e in dm.index.entries] == ["bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4"]
    assert dm.hparams.num_frames == 16 and dm.hparams.resolution == 64 and dm.skipped == []
    batch = next(iter(dm.train_dataloader()))
    assert batch["video"].shape == (4, 3, 16, 64, 64) and batch["video"].dtype == torch.float32
    assert batch["video"].min() >= -1 and batch["video"].max() <= 1
    for key in ("label", "video_index", "start_frame", "clip_index"):
        assert batch[key].shape == (4,) and batch[key].dtype == torch.int64
    assert (batch["label"] == -1).all()
    restored = pickle.loads(pickle.dumps(dm.dataset("val")))  # spawn workers / ddp_spawn pickle it
    assert torch.equal(restored[0]["video"], dm.dataset("val")[0]["video"])


def test_bundled_clips_never_train_on_their_validation_frames(tmp_path):
    dm = make_dm(tmp_path)
    val_start = {}
    for window in dm.split_windows("val"):
        entry = dm.index.entries[window.video_index]
        assert window.start_frame >= entry.num_frames * 0.8 - 1
        val_start[window.video_index] = min(val_start.get(window.video_index, 10**9), window.start_frame)
    assert set(val_start) == {0, 1, 2}  # every scene has a clip it never trained on
    for window in dm.split_windows("train"):
        assert max(window.start_choices) + 16 <= val_start[window.video_index]
    val_batch = next(iter(dm.val_dataloader()))
    assert torch.equal(val_batch["start_frame"], torch.tensor([w.start_frame for w in dm.split_windows("val")]))


def test_kinetics_tree_labels_splits_and_skips(tmp_path, kinetics_root):
    root, expected = kinetics_root
    with pytest.warns(UserWarning) as caught:
        dm = make_dm(tmp_path, root=str(root), num_frames=8, batch_size=2)
    skipped = {s.path.split(f"{root}/")[1]: s.reason for s in dm.skipped}
    assert set(skipped) == set(expected["bad"])
    for rel_path, reason in expected["bad"].items():
        assert reason in skipped[rel_path]
        assert sum(rel_path in str(w.message) for w in caught) == 1  # one warning per bad file, naming it
    assert dm.label_names == ["abseiling", "juggling balls"]
    split_of = {e.rel_path: e.split for s in ("train", "val", "test") for e in dm.split_entries(s)}
    assert split_of == {rel: split for rel, (_, split) in expected["good"].items()}
    labels = {}
    for split in ("train", "val", "test"):
        for item in dm.dataset(split):
            labels[dm.index.entries[item["video_index"]].rel_path] = item["label"]
            assert item["video"].shape == (3, 8, 64, 64)
    assert labels == {rel: dm.label_names.index(lab) if lab else -1 for rel, (lab, _) in expected["good"].items()}


def test_read_failure_inside_an_epoch_is_replaced_deterministically(tmp_path):
    folder = tmp_path / "videos"
    for number in range(3):
        write_video(folder / f"v{number}.mp4", source_frames(16, which=number % 3), width=32, height=32)
    dm = make_dm(tmp_path, root=str(folder), num_frames=8, val_fraction=0.0)
    dataset = dm.dataset("train", train=False)
    broken = dm.index.entries.index(next(e for e in dm.index.entries if e.rel_path == "v1.mp4"))
    (folder / "v1.mp4").write_bytes(b"\x00" * 1000)  # breaks after indexing, as a flaky disk would
    with pytest.warns(UserWarning, match=r"v1\.mp4") as caught:
        items = [dataset[i] for i in range(len(dataset))]
    assert len([w for w in caught if "v1.mp4" in str(w.message)]) == 1  # warned once, not per clip
    assert all(item["video_index"] != broken for item in items)
    fresh = dm.dataset("train", train=False).__class__(dataset.entries, dataset.label_ids, dataset.windows,
                                                       ClipSpec(8, 64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = [fresh[i]["clip_index"] for i in range(len(fresh))]
    assert again == [item["clip_index"] for item in items]


def test_root_without_readable_video_is_one_clear_error(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.mp4").write_bytes(b"")
    with pytest.raises(NoReadableVideoError, match=r"(?s)junk.*a\.mp4: empty.*Fix"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            make_dm(tmp_path, root=str(tmp_path / "junk"))
    (tmp_path / "nothing").mkdir()
    with pytest.raises(NoReadableVideoError, match=r"No video files .*nothing"):
        make_dm(tmp_path, root=str(tmp_path / "nothing"))


def test_index_is_cached_and_refreshed_when_a_file_changes(tmp_path, monkeypatch):
    folder = tmp_path / "videos"
    write_video(folder / "a.mp4", source_frames(10, which=2), width=32, height=32)
    write_video(folder / "sub" / "b.mkv", source_frames(10, which=0), width=32, height=32)
    cache_dir = str(tmp_path / "index")
    first = index_module.build_index(str(folder), cache_dir=cache_dir, progress=False)
    probed = []
    real_probe = index_module.probe_video
    monkeypatch.setattr(index_module, "probe_video", lambda path: probed.append(path) or real_probe(path))
    again = index_module.build_index(str(folder), cache_dir=cache_dir, progress=False)
    assert probed == [] and again.entries == first.entries and again.fingerprint == first.fingerprint
    write_video(folder / "a.mp4", source_frames(12, which=2), width=32, height=32)
    changed = index_module.build_index(str(folder), cache_dir=cache_dir, progress=False)
    assert probed == [str(folder / "a.mp4")] and changed.fingerprint != first.fingerprint
    assert changed.entries[0].num_frames == 12 and {e.rel_path for e in changed.entries} == {"a.mp4", "sub/b.mkv"}


def test_index_probes_in_worker_processes_alike(kinetics_root):
    root, _ = kinetics_root
    in_process = index_module.build_index(str(root), cache_dir=None, progress=False)
    in_pool = index_module.build_index(str(root), cache_dir=None, progress=False, num_workers=2)
    assert in_pool.entries == in_process.entries and len(in_pool.entries) == 9


def test_plain_folder_split_is_a_stable_hash_of_the_relative_path(tmp_path):
    assert hash_split("a/b.mp4", 0.5) == hash_split("a/b.mp4", 0.5)
    splits = [hash_split(f"clip{i}.mp4", 0.2) for i in range(1000)]
    assert 150 < splits.count("val") < 250
    assert all(f.split == "temporal" for f in list_source(None))
    assert [f.path for f in list_source(None)] == [str(p) for p in embedded_clips()]


def test_data_summary_json(tmp_path, kinetics_root, capsys):
    root, expected = kinetics_root
    code = vqvideo_main(["data-summary", str(root), "--num_frames", "8", "--json",
                         "--index_cache_dir", str(tmp_path / "index")])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0
    assert summary["videos"] == len(expected["good"]) + len(expected["bad"])
    assert summary["readable"] == len(expected["good"]) + 1  # the short video is readable, just too short
    assert summary["clips"] == 3 * len(expected["good"])  # 24 frames -> three 8-frame clips per video
    assert {s["path"].split(f"{root}/")[1] for s in summary["skipped"]} == set(expected["bad"])
    assert all(s["reason"] for s in summary["skipped"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA machine may decode on its GPU")
def test_gpu_decoding_fails_in_setup_with_what_to_install(tmp_path):
    dm = KineticsDataModule(decode_device="gpu", num_workers=2, index_cache_dir=str(tmp_path / "index"),
                            progress=False)
    with pytest.raises(GpuDecodeUnavailable, match=r"sees no CUDA GPU.*pip install 'vqvideo\[gpu\]'"):
        dm.setup("fit")
