"""read_clip: shape, range, crops, stride and errors that name the file."""

import pytest
import torch

from data_videos import source_frames, write_video
from vqvideo.data.sources import embedded_clips
from vqvideo.data.video import GpuDecodeUnavailable, VideoReadError, read_clip


@pytest.fixture(scope="module")
def carphone():
    return str(embedded_clips()[2])  # 176 x 144, 120 frames


def test_shape_range_and_determinism(carphone):
    clip = read_clip(carphone, start_frame=10, num_frames=16, resolution=64)
    assert clip.shape == (3, 16, 64, 64) and clip.dtype == torch.float32
    assert clip.min() >= -1.0 and clip.max() <= 1.0 and clip.std() > 0.1
    assert torch.equal(clip, read_clip(carphone, 10, 16, resolution=64))


def test_random_crop_follows_the_generator_and_flip_mirrors(carphone):
    def random_clip(seed, flip=False):
        return read_clip(carphone, 0, 4, resolution=32, crop="random", flip=flip,
                         generator=torch.Generator().manual_seed(seed))

    assert torch.equal(random_clip(1), random_clip(1))
    assert torch.equal(random_clip(1, flip=True), random_clip(1).flip(-1))
    assert any(not torch.equal(random_clip(1), random_clip(seed)) for seed in range(2, 6))


def test_stride_picks_every_other_frame(carphone):
    strided = read_clip(carphone, 4, 3, frame_stride=2, resolution=32)
    frames = torch.cat([read_clip(carphone, 4 + 2 * i, 1, resolution=32) for i in range(3)], dim=1)
    assert torch.equal(strided, frames)


def test_upscales_a_small_video(tmp_path):
    path = write_video(tmp_path / "tiny.mp4", source_frames(3, which=2), width=40, height=32)
    assert read_clip(str(path), 0, 3, resolution=64).shape == (3, 3, 64, 64)


def test_errors_name_the_file(tmp_path, carphone):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(VideoReadError, match="notes.mp4"):
        read_clip(str(text), 0, 4)
    with pytest.raises(VideoReadError, match="too short"):
        read_clip(carphone, 110, 16)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA machine may have a CUDA build of decord")
def test_decord_gpu_decoding_without_cuda_points_to_the_gpu_extra(carphone):
    needs = r"decord has no CUDA in this build .*PyNvVideoCodec.*pip install 'vqvideo\[gpu\]'"
    with pytest.raises(GpuDecodeUnavailable, match=needs) as info:
        read_clip(carphone, 0, 4, decode_device="gpu")
    assert "\n" not in str(info.value) and "+cu" not in str(info.value)
