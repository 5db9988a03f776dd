"""Prediction panels: [ground truth | sample 1 | ...], given frames marked green, predicted red, missing truth grey."""

import numpy as np

from vqvideo.panels import GAP, HEADER_HEIGHT, MISSING_GREY, pad_truth, prediction_panel


def test_panel_layout_marks_given_and_predicted_frames():
    truth = np.full((16, 8, 8, 3), 50, np.uint8)
    samples = np.full((3, 16, 8, 8, 3), 200, np.uint8)
    panel = prediction_panel(truth, samples, num_given=4)
    assert panel.shape == (16, HEADER_HEIGHT + 8, 4 * 8 + 3 * GAP, 3)
    sample_corner = lambda t: tuple(panel[t, HEADER_HEIGHT, 8 + GAP])  # noqa: E731  first sample's top-left
    assert sample_corner(0) == (40, 200, 70) and sample_corner(4) == (230, 50, 50)  # green given, red predicted


def test_missing_truth_frames_are_grey_placeholders():
    truth = np.full((5, 64, 64, 3), 50, np.uint8)
    padded = pad_truth(truth, 8)
    assert padded.shape == (8, 64, 64, 3) and (padded[:5] == 50).all()
    assert np.array_equal(padded[5], padded[7]) and abs(padded[6].mean() - MISSING_GREY) < 25
