"""report.json — the one source of every number — and the files rendered from it: plots/*.png, report.md,
index.html. Rebuilt from the clip records whenever an eval finishes (or is re-run on a finished folder).

Sections: format, command, protocol, checkpoints (sha256), versions, clips, frame_quality, compression, levels,
fvd, paper_table2 (the paper's numbers, labelled as such) and run (command line, devices, timings: the only
section that may differ between an interrupted-and-resumed eval, a multi-device one and an uninterrupted one).
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from vqvideo.evaluation.clips import EvalClip
from vqvideo.evaluation.html import render_html
from vqvideo.evaluation.markdown import render_markdown
from vqvideo.evaluation.plots import write_plots
from vqvideo.evaluation.records import read_record
from vqvideo.evaluation.run import INDEX_HTML, REPORT_JSON, REPORT_MD
from vqvideo.evaluation.summary import EvalSettings, summarize, timings_section
from vqvideo.files import atomic_write_bytes, atomic_write_json

FORMAT = "vqvideo-eval/1"
PAPER_TABLE_2 = {
    "source": "Predicting Video with VQVAE, Table 2 (its text calls it Table 7): FVD on Kinetics-600 (lower is "
              "better), 2-fold cross-validation over 39 000 samples. These are the paper's numbers, not this eval's.",
    "rows": [
        {"method": "Video Transformer (Weissenborn et al., 2020)", "resolution": 64, "metric": "FVD",
         "mean": 170.0, "std": 5.0},
        {"method": "DVD-GAN-FP (Clark et al., 2020)", "resolution": 64, "metric": "FVD", "mean": 69.15, "std": 1.16},
        {"method": "TRIVD-GAN-FP (Luc et al., 2020)", "resolution": 64, "metric": "FVD", "mean": 25.74, "std": 0.66},
        {"method": "Video VQ-VAE", "resolution": 64, "metric": "FVD", "mean": 64.30, "std": 2.04},
        {"method": "Video VQ-VAE", "resolution": 64, "metric": "FVD*", "mean": 54.30, "std": 3.49},
        {"method": "Video VQ-VAE", "resolution": 256, "metric": "FVD", "mean": 129.85, "std": 1.64},
        {"method": "Video VQ-VAE", "resolution": 256, "metric": "FVD*", "mean": 82.45, "std": 1.16},
    ],
}
RUN_NOTE = ("how this report was produced: differs between runs of the same eval (resumed, more devices) and is "
            "left out when comparing reports; every other section is a function of the eval's settings")
VERSIONED = ("vqvideo", "torch", "pytorch-lightning", "torchmetrics", "av", "numpy", "decord2")


def versions() -> dict[str, str | None]:
    """Python and the packages the numbers depend on (None where one is not installed)."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


@dataclass
class ReportContext:
    """Everything the report needs besides the records: the folder, the clips (in order), the settings, the header
    sections the tool builds (settings, protocol, checkpoints) and how it was run (command line, devices)."""

    out: Path
    clips: list[EvalClip]
    settings: EvalSettings
    header: dict
    run: dict
    html_clips: int = 24


def build_report(context: ReportContext, wall_seconds: float | None = None) -> dict:
    """report.json's content from every clip's record."""
    records, failed = [], []
    for clip in context.clips:
        record = read_record(context.out, clip.name)
        reason = str(record["read_error"])
        if reason:
            failed.append({"name": clip.name, "video_path": clip.video_path, "reason": reason})
        else:
            records.append(record)
    scored = [clip for clip in context.clips if clip.name not in {entry["name"] for entry in failed}]
    clips = {"planned": len(context.clips), "scored": len(scored), "failed": failed,
             "list": [clip.as_dict() for clip in scored]}
    report = {"format": FORMAT, **context.header, "versions": versions(), "clips": clips}
    report |= summarize(records, context.settings)
    report["paper_table2"] = PAPER_TABLE_2
    report["run"] = {"note": RUN_NOTE, **context.run,
                     "timings": timings_section(records, context.settings, wall_seconds)}
    return report


def write_report(context: ReportContext, wall_seconds: float | None = None) -> dict:
    """Write report.json, the plots, report.md and index.html (each atomically); returns the report."""
    report = build_report(context, wall_seconds)
    atomic_write_json(context.out / REPORT_JSON, report, sort_keys=False)
    report = json.loads((context.out / REPORT_JSON).read_text())  # render exactly what the JSON holds
    plots = write_plots(report, context.out)
    atomic_write_bytes(context.out / REPORT_MD, render_markdown(report, plots).encode())
    atomic_write_bytes(context.out / INDEX_HTML, render_html(report, plots, context.html_clips).encode())
    return report
