"""Clip windows: deterministic, non-overlapping, inside their split; training ranges partition the video."""

import pytest

from vqvideo.data.windows import (clip_span, clip_starts, split_frame_range, stride_for_fps, train_start_range,
                                  video_windows)


@pytest.mark.parametrize("num_video_frames,num_frames,frame_stride", [(250, 16, 1), (132, 16, 2), (16, 16, 1),
                                                                      (100, 5, 3), (47, 16, 3)])
def test_clip_starts_fit_and_do_not_overlap(num_video_frames, num_frames, frame_stride):
    span = clip_span(num_frames, frame_stride)
    starts = clip_starts(num_video_frames, num_frames, frame_stride)
    assert len(starts) == num_video_frames // span
    assert all(start + span <= num_video_frames for start in starts)
    assert all(later - earlier >= span for earlier, later in zip(starts, starts[1:]))
    assert starts == clip_starts(num_video_frames, num_frames, frame_stride)


def test_too_short_video_has_no_clip():
    assert clip_starts(15, 16) == []
    assert clip_starts(30, 16, frame_stride=2) == []  # needs 31 frames


def test_clip_step_gives_overlapping_windows_that_still_fit():
    assert clip_starts(40, 16, step=4) == [0, 4, 8, 12, 16, 20, 24]
    assert clip_starts(40, 16, frame_stride=2, step=4) == [0, 4, 8]  # span 31
    assert clip_starts(40, 16, step=16) == clip_starts(40, 16)
    with pytest.raises(ValueError, match="clip_step"):
        clip_starts(40, 16, step=0)


def test_max_clips_spreads_the_kept_windows():
    all_starts = clip_starts(160, 16)  # 10 windows
    assert clip_starts(160, 16, max_clips=1) == [all_starts[5]]
    kept = clip_starts(160, 16, max_clips=3)
    assert len(kept) == 3 and set(kept) <= set(all_starts) and kept == sorted(kept)
    assert kept[0] < all_starts[4] and kept[-1] > all_starts[5]


@pytest.mark.parametrize("num_windows", [1, 3, 12])
def test_train_start_ranges_partition_all_valid_starts(num_windows):
    num_video_frames, span = 200, 16
    ranges = [train_start_range(num_video_frames, span, w, num_windows) for w in range(num_windows)]
    covered = [start for r in ranges for start in r]
    assert covered == list(range(num_video_frames - span + 1))


def test_temporal_split_keeps_validation_at_the_end():
    train, val = split_frame_range(120, "train", 0.2), split_frame_range(120, "val", 0.2)
    assert train == range(0, 96) and val == range(96, 120)
    windows = video_windows(7, val, num_frames=16, frame_stride=1, train=False)
    assert [(w.video_index, w.start_frame) for w in windows] == [(7, 96)]
    train_windows = video_windows(7, train, num_frames=16, frame_stride=1, train=True)
    assert all(c + 16 <= 96 for w in train_windows for c in w.start_choices)


def test_stride_for_fps():
    assert stride_for_fps(30.0, None, 2) == 2
    assert stride_for_fps(30.0, 15.0, 1) == 2
    assert stride_for_fps(25.0, 30.0, 1) == 1
