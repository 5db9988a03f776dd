"""Bouncing sprites: a learnable-motion video dataset with a known answer (issue 23).

Each video shows a few sprites (circles, squares, triangles) of different sizes and colours over a background, each
moving at a constant velocity and bouncing off the frame's borders. Two frames fix every sprite's position and
velocity, so the 4 given frames of §3.2 determine the 12 to predict exactly, while copying the last given frame is
poor (sprites move several pixels per frame). Everything follows from the seed: the same seed and settings give the
same frames and the same files, byte for byte.

The videos are written as H.264 MP4 files (PyAV, libx264 in its deterministic C code path, near-lossless CRF), so
probing, decoding, caching, training, prediction and evaluation run on them exactly as on real video.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vqvideo.files import atomic_write
from vqvideo.video_io import X264_OPTIONS

SHAPES = ("circle", "square", "triangle")
BACKGROUNDS = ("flat", "gradient")
INFO_NAME = "sprites.json"


@dataclass(frozen=True)
class SpriteStyle:
    """How the videos look and move. Ranges are (low, high), drawn uniformly per video or per sprite.

    size: frame height = width in pixels. num_frames: frames per video. fps: the files' frame rate.
    num_sprites: sprites per video. radius: sprite half-size in pixels. speed: pixels per frame.
    shapes: names from SHAPES. saturation / value: HSV ranges of sprite colours.
    num_hues: sprite hues come from this many evenly spaced hues starting at `hue_offset` (a palette, which a
        codebook of a few hundred codes can hold); None = any hue.
    background: 'flat' (one random colour) or 'gradient' (a random linear ramp between two colours).
    background_value: HSV value range of the background colours (dark backgrounds keep sprites visible).
    num_background_hues: like num_hues, for the background colours (offset half a step from the sprites').
    """

    size: int = 64
    num_frames: int = 64
    fps: int = 8
    num_sprites: tuple[int, int] = (2, 3)
    radius: tuple[float, float] = (5.0, 10.0)
    speed: tuple[float, float] = (1.5, 3.5)
    shapes: tuple[str, ...] = SHAPES
    saturation: tuple[float, float] = (0.6, 1.0)
    value: tuple[float, float] = (0.7, 1.0)
    background: str = "flat"
    background_value: tuple[float, float] = (0.05, 0.35)
    num_hues: int | None = None
    num_background_hues: int | None = None
    hue_offset: float = 0.0

    def __post_init__(self) -> None:
        unknown = [shape for shape in self.shapes if shape not in SHAPES]
        if unknown or not self.shapes:
            raise ValueError(f"shapes must be a non-empty subset of {SHAPES}, got {self.shapes}")
        if self.background not in BACKGROUNDS:
            raise ValueError(f"background must be one of {BACKGROUNDS}, got {self.background!r}")
        if self.size % 2 or self.size < 16:
            raise ValueError(f"size must be an even number of pixels >= 16, got {self.size}")
        if self.radius[1] * 2 >= self.size or self.radius[0] <= 0 or self.num_sprites[0] < 1:
            raise ValueError(f"need 0 < radius < size/2 and at least one sprite, got radius {self.radius}, "
                             f"num_sprites {self.num_sprites}, size {self.size}")


@dataclass(frozen=True)
class Sprite:
    """One sprite: start centre (y, x) and velocity (pixels per frame), half-size, RGB colour in [0, 1]."""

    shape: str
    radius: float
    start: tuple[float, float]
    velocity: tuple[float, float]
    colour: tuple[float, float, float]


def hsv_to_rgb(hue: float, saturation: float, value: float) -> tuple[float, float, float]:
    """HSV in [0, 1] → RGB in [0, 1]."""
    sector = hue * 6.0
    chroma = value * saturation
    second = chroma * (1 - abs(sector % 2 - 1))
    rgb = [(chroma, second, 0), (second, chroma, 0), (0, chroma, second), (0, second, chroma),
           (second, 0, chroma), (chroma, 0, second)][int(sector) % 6]
    return tuple(float(c + value - chroma) for c in rgb)


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def random_colour(rng: np.random.Generator, saturation: tuple[float, float], value: tuple[float, float],
                  num_hues: int | None = None, hue_offset: float = 0.0):
    """RGB in [0, 1]: saturation and value uniform in their ranges; hue uniform, or one of `num_hues` even steps."""
    hue = float(rng.uniform()) if num_hues is None else (int(rng.integers(num_hues)) / num_hues + hue_offset) % 1.0
    return hsv_to_rgb(hue, _uniform(rng, saturation), _uniform(rng, value))


def random_sprite(rng: np.random.Generator, style: SpriteStyle) -> Sprite:
    radius = _uniform(rng, style.radius)
    start = tuple(float(rng.uniform(radius, style.size - radius)) for _ in range(2))
    angle, speed = float(rng.uniform(0, 2 * np.pi)), _uniform(rng, style.speed)
    shape = style.shapes[int(rng.integers(len(style.shapes)))]
    colour = random_colour(rng, style.saturation, style.value, style.num_hues, style.hue_offset)
    return Sprite(shape, radius, start, (speed * np.sin(angle), speed * np.cos(angle)), colour)


def bounce(start: float, velocity: float, frame: int, low: float, high: float) -> float:
    """Position at `frame` of a point moving at constant `velocity` from `start`, reflected at `low` and `high`."""
    span = high - low
    unfolded = (start - low + velocity * frame) % (2 * span)
    return low + (unfolded if unfolded <= span else 2 * span - unfolded)


def coverage(sprite: Sprite, centre: tuple[float, float], size: int) -> np.ndarray:
    """(size, size) float32 in [0, 1]: how much of each pixel the sprite covers (1-pixel anti-aliased edge)."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    dy, dx = ys - centre[0], xs - centre[1]
    radius = sprite.radius
    if sprite.shape == "circle":
        inside = radius - np.sqrt(dy * dy + dx * dx)
    elif sprite.shape == "square":
        inside = radius - np.maximum(np.abs(dy), np.abs(dx))
    else:  # upward triangle inscribed in the circle of `radius`: the smallest distance to its three edges
        normals = [(-1.0, 0.0), (0.5, np.sqrt(3) / 2), (0.5, -np.sqrt(3) / 2)]  # (ny, nx), pointing outwards
        inside = np.min([radius / 2 - (ny * -dy + nx * dx) for ny, nx in normals], axis=0)
    return np.clip(inside + 0.5, 0.0, 1.0)


def background(rng: np.random.Generator, style: SpriteStyle) -> np.ndarray:
    """(size, size, 3) float32 in [0, 1]."""
    hues, offset = style.num_background_hues, style.hue_offset + 0.5 / (style.num_background_hues or 1)
    first = np.array(random_colour(rng, (0.2, 0.8), style.background_value, hues, offset), dtype=np.float32)
    if style.background == "flat":
        return np.broadcast_to(first, (style.size, style.size, 3)).copy()
    second = np.array(random_colour(rng, (0.2, 0.8), style.background_value, hues, offset), dtype=np.float32)
    angle = float(rng.uniform(0, 2 * np.pi))
    ys, xs = np.mgrid[0:style.size, 0:style.size].astype(np.float32) / (style.size - 1)
    ramp = np.clip(0.5 + (np.sin(angle) * (ys - 0.5) + np.cos(angle) * (xs - 0.5)), 0, 1)[..., None]
    return (1 - ramp) * first + ramp * second


def render(sprites: list[Sprite], backdrop: np.ndarray, style: SpriteStyle) -> np.ndarray:
    """The video: uint8 (T, H, W, 3). Sprites are drawn in list order (later ones in front)."""
    frames = np.empty((style.num_frames, style.size, style.size, 3), dtype=np.uint8)
    for frame in range(style.num_frames):
        image = backdrop.copy()
        for sprite in sprites:
            centre = tuple(bounce(start, velocity, frame, sprite.radius, style.size - sprite.radius)
                           for start, velocity in zip(sprite.start, sprite.velocity))
            alpha = coverage(sprite, centre, style.size)[..., None]
            image = (1 - alpha) * image + alpha * np.asarray(sprite.colour, dtype=np.float32)
        frames[frame] = np.round(image * 255).astype(np.uint8)
    return frames


def make_video(seed: int, index: int, style: SpriteStyle) -> np.ndarray:
    """Video `index` of the dataset of `seed`: uint8 (T, H, W, 3), independent of every other video's draw."""
    rng = np.random.default_rng([seed, index])
    backdrop = background(rng, style)
    count = int(rng.integers(style.num_sprites[0], style.num_sprites[1] + 1))
    return render([random_sprite(rng, style) for _ in range(count)], backdrop, style)


def write_x264(path: Path, frames: np.ndarray, fps: int, crf: int, pix_fmt: str) -> Path:
    """frames: uint8 (T, H, W, 3) → H.264 MP4 at `path` (atomic), single-threaded C x264: same frames, same bytes."""
    import av  # PyAV: a core dependency, imported here so the generator's maths loads without FFmpeg

    def write(temp: Path) -> None:
        with av.open(str(temp), mode="w", format="mp4") as container:
            options = {**X264_OPTIONS, "crf": str(crf)}
            stream = container.add_stream("libx264", rate=fps, options=options)
            stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
            stream.thread_count = 1
            for frame in frames:
                video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format=pix_fmt)
                for packet in stream.encode(video_frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)

    return atomic_write(path, write)


def write_dataset(out: Path, num_videos: int, seed: int, style: SpriteStyle = SpriteStyle(), crf: int = 4,
                  pix_fmt: str = "yuv444p") -> list[Path]:
    """Write sprites_00000.mp4 ... and sprites.json (settings) into `out`; returns the video paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(num_videos):
        path = out / f"sprites_{index:05d}.mp4"
        paths.append(write_x264(path, make_video(seed, index, style), style.fps, crf, pix_fmt))
    info = {"seed": seed, "num_videos": num_videos, "crf": crf, "pix_fmt": pix_fmt, "style": asdict(style)}
    atomic_write(out / INFO_NAME, lambda temp: temp.write_text(json.dumps(info, indent=1) + "\n"))
    return paths
