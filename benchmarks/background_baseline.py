"""How high does a predictor score that erases every moving object? A bar for "samples beat copy-last".

    python benchmarks/background_baseline.py outputs/sprites/eval

Reads the ground-truth MP4s an eval wrote (<eval>/videos/truth/*.mp4, 16 frames, the first 4 given) and prints,
per clip and on average, the PSNR (dB, 8-bit range, mean over the 12 predicted frames) of two baselines:
copy-last (every predicted frame is the last given frame) and background-only (every predicted frame is one flat
colour, the per-channel median of the last given frame). On sprites over a flat background the second erases the
sprites: it predicts no motion at all, and copy-last is a weaker bar than it. Figures are from the MP4s, so they
differ by a few tenths from the eval's, which scores the decoded clips before writing them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import av
import numpy as np

NUM_GIVEN = 4


def read_frames(path: Path) -> np.ndarray:
    """An MP4 → (T, H, W, 3) float64 in 0..255."""
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]).astype(np.float64)


def mean_psnr(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Mean over frames of each frame's PSNR: prediction broadcastable to truth (T, H, W, 3)."""
    mse = ((np.broadcast_to(prediction, truth.shape) - truth) ** 2).mean(axis=(1, 2, 3))
    return float(np.mean(10 * np.log10(255.0**2 / np.maximum(mse, 1e-12))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("eval_dir", type=Path, help="an eval output folder (with videos/truth/)")
    args = parser.parse_args()
    paths = sorted((args.eval_dir / "videos" / "truth").glob("*.mp4"))
    if not paths:
        raise SystemExit(f"{args.eval_dir}/videos/truth has no MP4s: pass a `vqvideo eval` output folder")
    rows = []
    for path in paths:
        video = read_frames(path)
        last, future = video[NUM_GIVEN - 1], video[NUM_GIVEN:]
        background = np.median(last.reshape(-1, 3), axis=0)
        rows.append((path.stem, mean_psnr(last, future), mean_psnr(background, future)))
        print(f"{path.stem:28s} copy-last {rows[-1][1]:6.2f}  background-only {rows[-1][2]:6.2f}")
    copy_last, background = np.mean([row[1] for row in rows]), np.mean([row[2] for row in rows])
    print(f"{len(rows)} clips, mean over the {len(read_frames(paths[0])) - NUM_GIVEN} predicted frames: "
          f"copy-last {copy_last:.2f} dB, background-only {background:.2f} dB")


if __name__ == "__main__":
    main()
