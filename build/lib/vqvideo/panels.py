"""Side-by-side prediction videos: [ground truth | sample 1 | ... | sample K], frames marked by role.

Each frame gets a coloured border drawn into it: green on the given (conditioning) frames, red on predicted
frames, white on ground-truth future frames. Missing ground truth (input shorter than the clip) is a grey frame
crossed out and labelled "no GT". A header strip names the panels. With `window_starts` (a rollout), a footer
strip counts frames and names the window each belongs to, and the first frame of every later window has a yellow
border in the sample columns, so people see where each window starts. All arrays are uint8 (T, H, W, 3).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

GIVEN_COLOUR = (40, 200, 70)  # frames the model was given
PREDICTED_COLOUR = (230, 50, 50)  # frames the model sampled
TRUTH_COLOUR = (240, 240, 240)  # real future frames
WINDOW_START_COLOUR = (250, 210, 40)  # first frame of a rollout's later window
MISSING_GREY = 110
HEADER_HEIGHT = 14
FOOTER_HEIGHT = 14
GAP = 2


def mark_frames(frames: np.ndarray, num_given: int, future_colour: tuple[int, int, int], border: int) -> np.ndarray:
    """frames: uint8 (T, H, W, 3). Returns a copy whose first num_given frames have a green border and the rest
    a `future_colour` border, `border` pixels wide."""
    marked = frames.copy()
    for index in range(len(marked)):
        colour = np.array(GIVEN_COLOUR if index < num_given else future_colour, dtype=np.uint8)
        marked[index, :border] = colour
        marked[index, -border:] = colour
        marked[index, :, :border] = colour
        marked[index, :, -border:] = colour
    return marked


def missing_frame(height: int, width: int) -> np.ndarray:
    """A grey, crossed-out frame labelled "no GT": uint8 (H, W, 3)."""
    image = Image.new("RGB", (width, height), (MISSING_GREY,) * 3)
    draw = ImageDraw.Draw(image)
    draw.line([(0, 0), (width - 1, height - 1)], fill=(80, 80, 80), width=1)
    draw.line([(0, height - 1), (width - 1, 0)], fill=(80, 80, 80), width=1)
    _centered_text(draw, "no  GT", width, height)
    return np.asarray(image)


def pad_truth(truth: np.ndarray, num_frames: int) -> np.ndarray:
    """truth: uint8 (Tr, H, W, 3), Tr <= num_frames → (num_frames, H, W, 3), missing frames from `missing_frame`."""
    missing = num_frames - len(truth)
    if missing <= 0:
        return truth[:num_frames]
    filler = np.broadcast_to(missing_frame(truth.shape[1], truth.shape[2]), (missing, *truth.shape[1:]))
    return np.concatenate([truth, filler], axis=0)


def upscale(frames: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling of uint8 (T, H, W, 3) by an integer factor (codes stay visible as blocks)."""
    if factor == 1:
        return frames
    return frames.repeat(factor, axis=1).repeat(factor, axis=2)


def prediction_panel(truth: np.ndarray, samples: np.ndarray, num_given: int, scale: int = 1,
                     window_starts: list[int] | None = None) -> np.ndarray:
    """truth: uint8 (Tr, H, W, 3), Tr <= T frames of the real video (padded with "no GT" frames);
    samples: uint8 (K, T, H, W, 3) decoded predictions. window_starts: first frame of each window of a rollout
    (`vqvideo.sampling.pipeline.window_starts`), or None for no footer. Returns uint8 (T, HEADER_HEIGHT + H*scale
    [+ FOOTER_HEIGHT], (K + 1) * W*scale + K * GAP, 3): ground truth then the K samples, given frames marked green."""
    num_frames = samples.shape[1]
    border = max(1, scale)
    truth = upscale(pad_truth(truth, num_frames), scale)
    columns = [mark_frames(truth, num_given, TRUTH_COLOUR, border)]
    columns += [mark_frames(upscale(sample, scale), num_given, PREDICTED_COLOUR, border) for sample in samples]
    if window_starts:
        columns[1:] = [mark_window_starts(column, window_starts, num_given, border) for column in columns[1:]]
    height, width = columns[0].shape[1:3]
    gap = np.zeros((num_frames, height, GAP, 3), dtype=np.uint8)
    body = np.concatenate([part for column in columns for part in (column, gap)][:-1], axis=2)
    labels = ["ground truth"] + [f"sample {k + 1}" for k in range(len(samples))]
    header = _header(labels, width, body.shape[2])
    parts = [np.broadcast_to(header, (num_frames, *header.shape)), body]
    if window_starts:
        parts.append(np.stack([_footer(frame_label(t, num_frames, window_starts, num_given), body.shape[2])
                               for t in range(num_frames)]))
    return np.concatenate(parts, axis=1)


def frame_label(frame: int, num_frames: int, window_starts: list[int], num_given: int) -> str:
    """"frame 17/40 · window 2": the frame counter of a rollout; window w's new frames start at its start +
    num_given (the first window's given frames are labelled "given")."""
    if frame < num_given:
        return f"frame {frame + 1}/{num_frames} · given"
    window = max(index for index, start in enumerate(window_starts) if start + num_given <= frame)
    return f"frame {frame + 1}/{num_frames} · window {window + 1}"


def mark_window_starts(frames: np.ndarray, window_starts: list[int], num_given: int, border: int) -> np.ndarray:
    """frames: uint8 (T, H, W, 3) of one sample; the first new frame of every window after the first gets a yellow
    border. Returns a copy."""
    marked = frames.copy()
    colour = np.array(WINDOW_START_COLOUR, dtype=np.uint8)
    for start in window_starts[1:]:
        if start + num_given < len(marked):
            frame = marked[start + num_given]
            frame[:border], frame[-border:], frame[:, :border], frame[:, -border:] = colour, colour, colour, colour
    return marked


def _footer(text: str, total_width: int) -> np.ndarray:
    image = Image.new("RGB", (total_width, FOOTER_HEIGHT), (0, 0, 0))
    ImageDraw.Draw(image).text((2, 1), text, fill=(255, 255, 255), font=ImageFont.load_default())
    return np.asarray(image)


def _header(labels: list[str], column_width: int, total_width: int) -> np.ndarray:
    image = Image.new("RGB", (total_width, HEADER_HEIGHT), (0, 0, 0))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    for index, label in enumerate(labels):
        draw.text((index * (column_width + GAP) + 2, 1), label, fill=(255, 255, 255), font=font)
    return np.asarray(image)


def _centered_text(draw: ImageDraw.ImageDraw, text: str, width: int, height: int) -> None:
    font = ImageFont.load_default()
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    position = ((width - (right - left)) / 2, (height - (bottom - top)) / 2 - top)
    draw.rectangle([position[0] - 2, position[1] + top - 1, position[0] + right - left + 2, position[1] + bottom + 1],
                   fill=(MISSING_GREY,) * 3)
    draw.text(position, text, fill=(255, 255, 255), font=font)
