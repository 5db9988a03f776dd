"""The same clip decodes to the same bytes in every run: H.264 with damaged slices, decoded many times in
DataLoader workers while other processes load the CPU, and two `vqvideo precompute` runs of a folder holding it.

With FFmpeg's frame threads the decoder's error concealment depends on timing (measured: 40 decodes of one
damaged window gave 3 different results); vqvideo decodes with one thread. A file decord cannot decode in
full (a cut packet) is skipped by name: decord reads ahead, so its clips would fail at random.
"""

import hashlib
import multiprocessing

import pytest
from cache_helpers import precompute_args, save_tiny_vqvae
from codec_videos import corrupt_slices, cut_packet_mp4
from torch.utils.data import DataLoader

from vqvideo.cache.manifest import SHARD_ARRAYS, read_manifest
from vqvideo.cache.shards import shard_file
from vqvideo.commands import precompute
from vqvideo.data.datamodule import KineticsDataModule

REPEATS = 5


def _spin(stop) -> None:
    while not stop.is_set():
        pass


@pytest.fixture
def cpu_load():
    """Two busy-looping processes for the test's duration (as many as this machine's cores)."""
    context = multiprocessing.get_context("fork")
    stop = context.Event()
    spinners = [context.Process(target=_spin, args=(stop,), daemon=True) for _ in range(2)]
    for spinner in spinners:
        spinner.start()
    yield
    stop.set()
    for spinner in spinners:
        spinner.join(timeout=10)


@pytest.fixture(scope="module")
def damaged_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("damaged")
    corrupt_slices(root / "slices.avi")  # no timestamps: read in order
    corrupt_slices(root / "slices.mp4")  # timestamps: read by seeking
    cut_packet_mp4(root / "cut_packet.mp4")
    return root


def clip_digests(dataset, num_workers: int) -> list[str]:
    """sha256 of every clip of the dataset, loaded by a fresh DataLoader with `num_workers` processes."""
    loader = DataLoader(dataset, batch_size=2, shuffle=False, num_workers=num_workers)
    return [hashlib.sha256(video.numpy().tobytes()).hexdigest() for batch in loader for video in batch["video"]]


@pytest.mark.slow  # 6 min in a fresh clone's `make test` (2 spinners on 2 cores, 6 passes over 19 clips); the
# precompute test below checks the same files under the same load, fast
def test_damaged_slices_decode_identically_in_workers_under_load(damaged_root, tmp_path, cpu_load):
    dm = KineticsDataModule(root=str(damaged_root), num_frames=8, resolution=32, val_fraction=0.0, num_workers=2,
                            index_cache_dir=str(tmp_path / "index"), progress=False)
    dm.setup("fit")
    assert dm.skipped == []
    kept = {entry.rel_path: (entry.num_frames, entry.read_mode) for entry in dm.index.entries}
    assert kept["cut_packet.mp4"] == (45, "pyav")  # the frames before its damaged packet, decoded by PyAV
    dataset = dm.dataset("train", train=False)  # fixed starts, center crops: one right answer per clip
    assert len(dataset) == 2 * (60 // 8) + 45 // 8
    in_process = clip_digests(dataset, num_workers=0)
    for _ in range(REPEATS):
        assert clip_digests(dataset, num_workers=2) == in_process


def test_two_precompute_runs_give_byte_identical_shards(damaged_root, tmp_path, cpu_load):
    checkpoint = save_tiny_vqvae(tmp_path / "vqvae.ckpt")
    manifests = []
    for run in ("first", "second"):
        args = precompute_args(checkpoint, tmp_path / run, tmp_path / f"index-{run}", "--data.root",
                               str(damaged_root), "--data.max_clips_per_video", "3", "--data.num_workers", "2")
        assert precompute.main(args) == 0
        manifests.append(read_manifest(tmp_path / run))
    first, second = manifests
    assert len(first.clips) > 6 and first.failed_clips == [] and first.clips == second.clips
    assert {clip.video_path.split("/")[-1] for clip in first.clips} == {"slices.avi", "slices.mp4", "cut_packet.mp4"}
    assert [shard.files for shard in first.shards] == [shard.files for shard in second.shards]  # names, sha256
    for shard in first.shards:
        for array in SHARD_ARRAYS:
            first_bytes = shard_file(tmp_path / "first", shard, array).read_bytes()
            assert first_bytes == shard_file(tmp_path / "second", shard, array).read_bytes(), (shard.name, array)
