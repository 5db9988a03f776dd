"""An eval folder's layout and life: the identity of the command that fills it (`run.json`), refusing a folder
that another command filled, deleting only the eval's own files, and what a killed run leaves behind.

Layout (the human-eval kit and the tests rely on it):
  run.json                         what the results depend on (checkpoints' sha256, clips, sampling, FVD, compute)
  results/<clip>.npz               one record per clip, written last: its presence means the clip is finished
  videos/<system>/<clip>.mp4       system in truth, reconstruction, copy_last, sample_0 .. sample_<K-1>
  codes/<clip>.npz                 the clip's VQ-VAE codes and every sample's codes (uint16)
  report.json, report.md, index.html, plots/*.png   the report, rebuilt from the records
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from vqvideo.files import TEMP_SUFFIX, atomic_write_json, read_json

RUN_NAME = "run.json"
REPORT_JSON, REPORT_MD, INDEX_HTML = "report.json", "report.md", "index.html"
RESULTS_DIR, VIDEOS_DIR, CODES_DIR, PLOTS_DIR = "results", "videos", "codes", "plots"
OWN_FILES = (RUN_NAME, REPORT_JSON, REPORT_MD, INDEX_HTML)
OWN_FOLDERS = (RESULTS_DIR, VIDEOS_DIR, CODES_DIR, PLOTS_DIR)


class EvalFolderError(RuntimeError):
    """An output folder that holds another command's eval."""


def differences(recorded: Any, requested: Any, path: str = "") -> list[str]:
    """'key.sub: recorded → requested' for every leaf that differs between two JSON-like values."""
    if isinstance(recorded, dict) and isinstance(requested, dict):
        found = []
        for key in sorted(recorded.keys() | requested.keys()):
            found += differences(recorded.get(key), requested.get(key), f"{path}.{key}" if path else key)
        return found
    return [] if recorded == requested else [f"{path}: {json.dumps(recorded)} → {json.dumps(requested)}"]


def check_run(out: Path, identity: dict) -> None:
    """Refuse `out` if it holds an eval made by another command (other checkpoints, clips, sampling, ...)."""
    if not (out / RUN_NAME).is_file():
        return
    changed = differences(read_json(out / RUN_NAME), json.loads(json.dumps(identity)))
    if changed:
        shown = "; ".join(changed[:4]) + (f"; and {len(changed) - 4} more" if len(changed) > 4 else "")
        raise EvalFolderError(f"refusing to write into {out}: it holds an eval made by another command ({shown}). "
                              "Pass --overwrite to replace it, or choose another --out")


def write_run(out: Path, identity: dict) -> None:
    atomic_write_json(out / RUN_NAME, identity)


def wipe(out: Path) -> None:
    """Delete the eval's own files only (the folder may hold other things)."""
    for name in OWN_FILES:
        (out / name).unlink(missing_ok=True)
    for folder in OWN_FOLDERS:
        shutil.rmtree(out / folder, ignore_errors=True)


def remove_leftovers(out: Path) -> None:
    """Delete the temporary files of writes a killed run did not finish (never a complete file)."""
    folders = [out, out / RESULTS_DIR, out / CODES_DIR, out / PLOTS_DIR]
    if (out / VIDEOS_DIR).is_dir():
        folders += [folder for folder in (out / VIDEOS_DIR).iterdir() if folder.is_dir()]
    for folder in folders:
        for temp in folder.glob(f".*{TEMP_SUFFIX}"):
            temp.unlink(missing_ok=True)


def finished_names(out: Path) -> set[str]:
    """Names of the clips whose record exists (finished, or recorded unreadable)."""
    return {path.stem for path in (out / RESULTS_DIR).glob("*.npz")}
