"""GPU decoding's contract, on CPU: PyNvVideoCodec's backend against a stand-in decoder with its interface and its
quirks (repeated indices dropped, out-of-range ones skipped with a warning, the container's frame count), import
failures as one line, and the CPU and "GPU" paths cutting the same clip (the stand-in hands over CPU-decoded frames,
tensors stay on the CPU)."""

import sys
import warnings

import pytest
import torch
from pytorch_lightning import LightningModule, Trainer
from torch.utils.data import default_collate

from vqvideo.cli import main as vqvideo_main
from vqvideo.data import gpu_decode
from vqvideo.data.datamodule import KineticsDataModule
from vqvideo.data.fixed_clips import FixedClipsDataModule
from vqvideo.data.gpu_decode import NvCodecFrames, clip_request, decode_clip_batch, import_nvcodec
from vqvideo.data.sources import embedded_clips
from vqvideo.data.video import (FrameSize, GpuDecodeUnavailable, VideoReadError, cut_clip, decode_frames,
                                probe_frame_size, read_clip, resize_frames, resized_size)

CPU = torch.device("cpu")
NVENC_MISSING = ("Failed to load NVENC library: libnvidia-encode.so.1: cannot open shared object file: No such file "
                 "or directory\n\n=== TROUBLESHOOTING STEPS ===\n\nThe NVENC library could not be found.")  # 2.2.4's


@pytest.fixture(scope="module")
def carphone():
    return str(embedded_clips()[2])  # 176 x 144, 120 frames


@pytest.fixture(scope="module")
def native(carphone):
    """All 120 frames of carphone at its source size, decoded on the CPU: (120, 144, 176, 3) uint8."""
    return decode_frames(carphone, list(range(120)), probe_frame_size(carphone))


class StandInDecoder:
    """PyNvVideoCodec 2.2.4 SimpleDecoder's interface and behaviour over CPU-decoded frames: `len` is the container's
    count (`header_frames`) unless scanned; repeated indices are dropped and out-of-range ones skipped with a warning;
    `lose` frames are silently missing from what it returns; frames are RGBP (3, H, W) uint8 DLPack objects."""

    def __init__(self, frames, header_frames=None, scanned=False, lose=(), stacked=False):
        self.frames, self.lose, self.stacked = frames, set(lose), stacked
        self.count = len(frames) if scanned or header_frames is None else header_frames
        self.asked = []

    def __len__(self):
        return self.count

    def get_batch_frames_by_index(self, indices):
        self.asked.append(list(indices))
        kept = []
        for index in indices:
            if not 0 <= index < self.count:
                warnings.warn(f"Skipping index {index}: Out of valid range [0, {self.count - 1}]")
            elif index not in kept:
                kept.append(index)
        delivered = [i for i in kept if i not in self.lose]
        planes = list(self.frames[delivered].permute(0, 3, 1, 2).contiguous()) if delivered else []  # (3, H, W)
        return [p.reshape(-1, p.shape[2]) for p in planes] if self.stacked else planes


class FramesOfFile:
    """A file's frames at its source size, decoded on the CPU when indexed: frames[indices] -> (N, H, W, 3) uint8."""

    def __init__(self, path, num_frames):
        self.path, self.num_frames, self.size = path, num_frames, probe_frame_size(path)

    def __len__(self):
        return self.num_frames

    def __getitem__(self, indices):
        return decode_frames(self.path, list(indices), self.size)


def stand_in(frames, **options):
    """An NvCodecFrames on the CPU whose decoders are StandInDecoders; .opened lists (path, scanned) per open."""
    opened, decoders = [], []

    def open_decoder(path, scanned):
        opened.append((path, scanned))
        decoders.append(StandInDecoder(frames, scanned=scanned, **options))
        return decoders[-1]
    source = NvCodecFrames(CPU, open_decoder)
    source.opened, source.decoders = opened, decoders
    return source


# ----- the backend's contract -----------------------------------------------------------------------------------------
def test_repeated_and_unordered_indices_come_back_in_the_clips_order(carphone, native):
    source = stand_in(native)
    frames = source.native(carphone, [5, 3, 5, 0, 3], num_frames=120)
    assert source.decoders[0].asked == [[0, 3, 5]]  # unique and sorted: nothing for it to drop
    assert torch.equal(frames, native[[5, 3, 5, 0, 3]])


def test_frames_past_the_index_count_are_refused_before_opening(carphone, native):
    source = stand_in(native)
    with pytest.raises(VideoReadError, match="too short: frame 120 requested, 120 frames"):
        source.native(carphone, [118, 119, 120], num_frames=120)
    assert source.opened == []


def test_a_container_count_short_of_the_index_reopens_with_the_scan(carphone, native):
    source = stand_in(native, header_frames=50)
    frames = source.native(carphone, [48, 60], num_frames=120)
    assert source.opened == [(carphone, False), (carphone, True)]
    assert torch.equal(frames, native[[48, 60]])


def test_skipped_or_missing_frames_are_an_error_naming_file_and_counts(carphone, native):
    with pytest.raises(VideoReadError, match=r"carphone.*returned 2 of the 3 frames asked for \(10\.\.12; it counts "
                                             r"120 frames; no warning\)"):
        stand_in(native, lose={11}).native(carphone, [10, 11, 12])
    short = stand_in(native[:50])  # the file decodes fewer frames than the index believed, even scanned
    with pytest.raises(VideoReadError, match=r"returned 1 of the 2 .*Skipping index 60"):
        short.native(carphone, [40, 60], num_frames=120)


def test_planes_stacked_as_3h_by_w_are_accepted_and_resized_on_request(carphone, native):
    frames = stand_in(native, stacked=True).native(carphone, [7, 8])
    assert torch.equal(frames, native[[7, 8]])
    size = FrameSize(64, 78)
    assert torch.equal(stand_in(native).resized(carphone, [7, 8], size), resize_frames(native[[7, 8]], size))


# ----- one line when it cannot run ------------------------------------------------------------------------------------
def test_missing_driver_library_is_one_line_with_the_fix(tmp_path, monkeypatch):
    """2.2.4's import raises RuntimeError (not ImportError) without libnvidia-encode.so.1, with a long help text."""
    package = tmp_path / "PyNvVideoCodec"
    package.mkdir()
    (package / "__init__.py").write_text(f"raise RuntimeError({NVENC_MISSING!r})\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "PyNvVideoCodec", raising=False)
    with pytest.raises(GpuDecodeUnavailable) as info:
        import_nvcodec()
    message = str(info.value)
    assert "\n" not in message and "libnvidia-encode.so.1: cannot open shared object file" in message
    assert "NVIDIA_DRIVER_CAPABILITIES must include video" in message and "pip install 'vqvideo[gpu]'" in message


def test_missing_extra_is_one_line_with_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "PyNvVideoCodec", None)  # import raises ImportError
    with pytest.raises(GpuDecodeUnavailable, match=r"^decode_device='gpu' is unavailable here: PyNvVideoCodec is "
                                                   r"not installed; it needs an NVIDIA GPU.*pip install "
                                                   r"'vqvideo\[gpu\]'; or set decode_device: cpu$"):
        import_nvcodec()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_the_cli_prints_one_line_and_no_traceback(tmp_path, capsys):
    code = vqvideo_main(["fit", "--config", "experiments/demo/vqvae.yaml", "--data.init_args.decode_device", "gpu",
                         "--data.init_args.index_cache_dir", str(tmp_path / "index"),
                         "--data.init_args.progress", "false", "--trainer.logger", "false",
                         "--trainer.default_root_dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("vqvideo fit: decode_device='gpu' is unavailable here: this torch")


# ----- the same clip on both paths ------------------------------------------------------------------------------------
@pytest.mark.parametrize("resolution, flip", [(64, False), (64, True), (128, True)])
def test_a_planned_clip_decodes_to_the_clip_the_cpu_cuts_from_the_same_frames(carphone, native, resolution, flip):
    """Same indices, crop corner (same random draw), flip and scaling; the frames resized alike (torch's
    antialiased bilinear, the CPU path's fallback resize) so that the pixels must match exactly."""
    indices = [20, 22, 24, 26]
    request = clip_request(carphone, indices, (144, 176), 120, resolution, "random", flip,
                           torch.Generator().manual_seed(3))
    video, errors = decode_clip_batch(stand_in(native), default_collate([request]), resolution, CPU)
    resized = resize_frames(native[indices], resized_size(FrameSize(144, 176), resolution))
    expected = cut_clip(resized, resolution, "random", flip, torch.Generator().manual_seed(3))
    assert errors == [""] and video.shape == (1, 3, 4, resolution, resolution) and torch.equal(video[0], expected)


def test_gpu_datamodule_batch_is_the_cpu_batch_up_to_the_resizer(tmp_path):
    """Two DataModules, decode_device cpu and gpu (the stand-in), same seed: same clips, crops and flips; pixels
    differ only by libswscale's vs torch's resize (measured on these clips: mean 0.9-2.8, max 24-38 levels); a
    clip flipped the other way is far further off."""
    def batch(decode_device):
        dm = KineticsDataModule(decode_device=decode_device, num_workers=0, random_flip=True, batch_size=6,
                                index_cache_dir=str(tmp_path / "index"), progress=False)
        if decode_device == "gpu":  # set before setup, so setup does not look for a real GPU decoder
            counts = lambda: {entry.path: entry.num_frames for entry in dm.index.entries}  # noqa: E731
            dm.gpu_frames = gpu_decode.NvCodecFrames(CPU, lambda path, scanned: StandInDecoder(
                FramesOfFile(path, counts()[path])))
        dm.setup("fit")
        torch.manual_seed(7)
        items = [dm.dataset("train")[i] for i in range(0, len(dm.dataset("train")), 7)][:6]
        return dm.on_after_batch_transfer(default_collate(items), 0)
    on_cpu = batch("cpu")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="GPU decoding failed")  # no clip may take the CPU fallback
        on_gpu = batch("gpu")
    assert "frame_indices" in on_gpu and "frame_indices" not in on_cpu
    for key in ("video_index", "start_frame", "clip_index"):
        assert torch.equal(on_cpu[key], on_gpu[key]), key
    assert bool(on_gpu["flip"].any()) and not bool(on_gpu["flip"].all())  # both kinds of clip compared
    levels = (on_cpu["video"] - on_gpu["video"]).abs() * 127.5
    mirrored = (on_cpu["video"] - on_gpu["video"].flip(-1)).abs() * 127.5
    assert on_gpu["video"].shape == on_cpu["video"].shape and float(levels.mean()) < 4.0, float(levels.mean())
    assert float(mirrored.mean()) > 3 * float(levels.mean())


def test_fixed_clips_decode_after_the_transfer_and_keep_read_errors(carphone, native, tmp_path):
    from types import SimpleNamespace

    missing = str(tmp_path / "gone.mp4")
    clips = [SimpleNamespace(clip_id=1, video_path=carphone, start_frame=4, num_frames=8, frame_stride=2, flip=True),
             SimpleNamespace(clip_id=2, video_path=missing, start_frame=0, num_frames=8, frame_stride=1, flip=False)]
    dm = FixedClipsDataModule(clips, resolution=64, batch_size=2, decode_device="gpu")
    dm.gpu_frames = stand_in(native)
    with pytest.warns(UserWarning, match="gone.mp4"):
        batch = dm.on_after_batch_transfer(next(iter(dm.predict_dataloader())), 0)
    assert batch["read_error"][0] == "" and "gone.mp4" in batch["read_error"][1]
    frames = resize_frames(native[list(range(4, 20, 2))], FrameSize(64, 78))
    assert torch.equal(batch["video"][0], cut_clip(frames, 64, "center", flip=True))
    assert not batch["video"][1].any()
    cpu = read_clip(carphone, 4, 8, 2, resolution=64, flip=True)  # the CPU path, libswscale's resize
    assert float((cpu - batch["video"][0]).abs().mean() * 127.5) < 4.0


class VideoShapes(LightningModule):
    """Records the clips Lightning hands to training_step."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.shapes = []

    def training_step(self, batch, batch_idx):
        self.shapes.append((tuple(batch["video"].shape), batch["video"].dtype, batch["video"].device.type))
        return (batch["video"].mean() - self.weight) ** 2

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_lightning_calls_the_decoding_hook_with_planning_workers(tmp_path):
    """A real Trainer with a forked DataLoader worker: the worker plans, Lightning's after-transfer hook decodes."""
    dm = KineticsDataModule(decode_device="gpu", num_workers=1, batch_size=2, resolution=32,
                            index_cache_dir=str(tmp_path / "index"), progress=False)
    counts = lambda: {entry.path: entry.num_frames for entry in dm.index.entries}  # noqa: E731
    dm.gpu_frames = NvCodecFrames(CPU, lambda path, scanned: StandInDecoder(FramesOfFile(path, counts()[path])))
    module = VideoShapes()
    trainer = Trainer(accelerator="cpu", max_steps=2, limit_val_batches=0, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path))
    trainer.fit(module, datamodule=dm)
    assert module.shapes == [((2, 3, 16, 32, 32), torch.float32, "cpu")] * 2
