"""Which videos `vqvideo demo --data` runs on: the bundled clips, the generated sprites, or a user's folder.

The demo's configs (experiments/demo/*.yaml) are written for the bundled clips and outputs/demo. For another
folder of videos the demo copies them with the output folder and the data root rewritten, predicts on a few of
the folder's held-out videos (its validation split) and evaluates on the held-out split with at most one window
per video. `sprites` means data/sprites, written by `vqvideo make-sprites` with its defaults when missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vqvideo.data.sources import hash_split, find_videos
from vqvideo.data.sprites import INFO_NAME, SpriteStyle, write_dataset
from vqvideo.lit.configs import dump_yaml, parse_yaml

SPRITES = "sprites"
SPRITES_ROOT = Path("data/sprites")
SPRITES_VIDEOS, SPRITES_SEED = 120, 0  # `vqvideo make-sprites` defaults: the dataset docs/sprites.md reports
HELD_OUT_INPUTS = 3  # held-out videos `predict` and `rollout` show
EVAL_CLIPS = 10  # held-out clips (one per video) the eval scores on a folder of videos


@dataclass(frozen=True)
class DemoData:
    """root: None = the bundled clips, else a folder of videos. name: for outputs/<name> and messages."""

    root: Path | None
    name: str

    @property
    def default_out(self) -> Path:
        return Path("outputs") / ("demo" if self.root is None else self.name)


def resolve_data(data: str | None) -> DemoData:
    """--data → DemoData; writes the sprites dataset first when `data` is 'sprites' and data/sprites lacks it."""
    if data is None:
        return DemoData(None, "demo")
    if data == SPRITES:
        if not (SPRITES_ROOT / INFO_NAME).is_file():
            print(f"[demo] {SPRITES_ROOT} has no sprites dataset: writing it ({SPRITES_VIDEOS} videos, seed "
                  f"{SPRITES_SEED}; `vqvideo make-sprites` does the same)", flush=True)
            write_dataset(SPRITES_ROOT, SPRITES_VIDEOS, SPRITES_SEED, SpriteStyle())
        return DemoData(SPRITES_ROOT, SPRITES)
    root = Path(data).expanduser()
    if not root.is_dir() or not find_videos(root):
        raise FileNotFoundError(f"--data {root}: not a folder with video files (.mp4, .avi, .mkv, .webm, .mov); "
                                f"pass a folder of videos, 'sprites', or leave --data out for the bundled clips")
    return DemoData(root, root.resolve().name)


def rewrite_config(text: str, config_out: str, out: Path, root: Path | None) -> str:
    """A demo YAML's text with `config_out` paths moved to `out` and (root given) its data root set to `root`."""
    text = text.replace(config_out, str(out))
    if root is None:
        return text
    settings = parse_yaml(text)
    data = settings["data"]
    data = data["init_args"] if "init_args" in data else data
    if "root" not in data:  # the priors read the code cache, not videos
        return text
    data["root"] = str(root)
    header = f"# experiments/demo config, rewritten by `vqvideo demo`: outputs in {out}, data root {root}\n"
    return header + dump_yaml(settings)


def held_out_inputs(root: Path, out: Path, val_fraction: float, count: int = HELD_OUT_INPUTS) -> Path:
    """A folder <out>/held_out of links to the first `count` videos of the root's validation split (the files the
    VQ-VAE's folder split never trains on): what `predict` shows. Returns the folder."""
    folder = out / "held_out"
    folder.mkdir(parents=True, exist_ok=True)
    resolved = root.resolve()
    held_out = [path for path in find_videos(resolved)
                if hash_split(path.relative_to(resolved).as_posix(), val_fraction) == "val"][:count]
    if not held_out:
        raise FileNotFoundError(f"{root}: no video falls in the validation split (val_fraction {val_fraction}); "
                                f"add videos (each file is held out with that probability)")
    for old in folder.iterdir():
        old.unlink()
    for path in held_out:
        (folder / path.name).symlink_to(path)
    return folder
