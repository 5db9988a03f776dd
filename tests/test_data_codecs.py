"""H.264, H.265, VP9 (WebM) and AV1: each indexed, read as clips (the frames PyAV decodes) and predicted.

decord 0.6.0 could not open AV1 ("cannot find video stream") while the PyAV-based probe called it readable;
decord2 decodes it, and the index now asks decord itself.
"""

import av
import numpy as np
import pytest
from codec_videos import CODECS, encode, pyav_frames
from test_predict import checkpoints, predict  # noqa: F401 (checkpoints is a fixture)

from vqvideo.data.index import build_index
from vqvideo.data.video import FrameSize, decode_frames, read_clip

NUM_FRAMES = 40


@pytest.fixture(scope="module")
def codec_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("codecs")
    for encoder, name, options in CODECS.values():
        if encoder not in av.codecs_available:
            pytest.fail(f"PyAV {av.__version__} lacks the {encoder} encoder these tests write {name} with")
        encode(root / name, encoder, NUM_FRAMES, options)
    return root


def test_every_codec_is_indexed_with_all_its_frames(codec_root):
    index = build_index(str(codec_root), cache_dir=None, progress=False)
    found = {entry.rel_path: (entry.readable, entry.num_frames, entry.height, entry.width) for entry in index.entries}
    assert found == {name: (True, NUM_FRAMES, 48, 64) for _, name, _ in CODECS.values()}


@pytest.mark.parametrize("codec", list(CODECS))
def test_clips_are_the_frames_pyav_decodes(codec_root, codec):
    path = str(codec_root / CODECS[codec][1])
    reference = np.stack(pyav_frames(codec_root / CODECS[codec][1]))
    assert len(reference) == NUM_FRAMES
    frames = decode_frames(path, list(range(8, 24)), FrameSize(48, 64)).numpy()
    assert np.array_equal(frames, reference[8:24])
    clip = read_clip(path, 8, 16, resolution=32)
    assert clip.shape == (3, 16, 32, 32) and clip.std() > 0.1


def predicted_names(checkpoints, folder, out) -> set[str]:
    """`vqvideo predict` on every video of a folder; the names it wrote a prediction for."""
    assert predict(checkpoints, folder, out, "--num_samples=1") == 0
    return {path.stem for path in out.glob("*.mp4")}


def test_every_codec_is_predicted(checkpoints, codec_root, tmp_path):  # noqa: F811
    assert predicted_names(checkpoints, codec_root, tmp_path / "out") == {"h264", "h265", "vp9", "av1"}
