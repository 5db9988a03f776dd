"""The report's PNG plots, drawn with matplotlib (Agg, no display) from report.json: per-frame PSNR and SSIM of
the samples against the baselines (window boundaries marked for rollouts), codebook usage per level, and FVD per
window when there is more than one.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from vqvideo.evaluation.run import PLOTS_DIR
from vqvideo.evaluation.tables import STAND_IN_LABEL
from vqvideo.files import atomic_write_bytes

STYLES = {"sample_mean": ("tab:red", "-", "samples (mean of K)"), "sample_best": ("tab:orange", "--", "best of K"),
          "copy_last": ("tab:blue", "-.", "copy last given frame"),
          "reconstruction": ("tab:green", ":", "VQ-VAE reconstruction (ceiling)")}


def _figure(width: float = 7.0, height: float = 4.0, rows: int = 1):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    return pyplot.subplots(rows, 1, figsize=(width, height * rows), squeeze=False)


def _save(figure, path: Path) -> None:
    from matplotlib import pyplot

    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=100)
    pyplot.close(figure)
    atomic_write_bytes(path, buffer.getvalue())


def frame_curve(report: dict, metric: str, path: Path) -> None:
    """Per-frame `metric` (psnr | ssim) of every system over the predicted frames."""
    section = report["frame_quality"]
    figure, axes = _figure()
    axis = axes[0, 0]
    for name, (colour, style, label) in STYLES.items():
        axis.plot(section["frames"], section["systems"][name][metric]["per_frame"], style, color=colour, label=label,
                  marker="o", markersize=3)
    for index, frame in enumerate(section["window_first_new_frames"][1:], start=2):
        axis.axvline(frame - 0.5, color="grey", linestyle="--", linewidth=1)
        axis.text(frame - 0.4, axis.get_ylim()[1], f"window {index}", va="top", fontsize=8, color="grey")
    axis.set_xlabel("frame (0-based; the first frames are given)")
    axis.set_ylabel("PSNR (dB)" if metric == "psnr" else "SSIM")
    clips = report["clips"]["scored"]
    axis.set_title(f"Per-frame {metric.upper()} of the predicted frames ({clips} clip{'s' * (clips != 1)}, "
                   f"K = {report['protocol']['samples_per_clip']})", fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    _save(figure, path)


def codebook_usage(report: dict, path: Path) -> None:
    """Per level: code frequencies sorted from most to least used, for the clips' codes and the samples' codes."""
    figure, axes = _figure(height=3.2, rows=2)
    for axis, level in zip(axes[:, 0], ("top", "bottom")):
        entry = report["levels"][level]
        for key, colour, label in (("codes", "tab:blue", "clips' codes"), ("sampled_codes", "tab:red", "sampled")):
            usage = entry[key]
            counts = np.sort(np.asarray(usage["histogram"], dtype=float))[::-1]
            axis.plot(np.arange(1, len(counts) + 1), counts / max(counts.sum(), 1.0), color=colour,
                      label=f"{label}: {usage['used']}/{usage['num_codes']} used, perplexity {usage['perplexity']:.1f}")
        axis.set_yscale("log")
        axis.set_xlabel("code rank")
        axis.set_ylabel("frequency")
        axis.set_title(f"{level} codebook usage ({entry['codes']['num_codes']} codes)", fontsize=10)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    _save(figure, path)


def fvd_windows(report: dict, path: Path) -> None:
    """FVD and FVD* of each window of a rollout, one line per resolution."""
    fvd = report["fvd"]
    figure, axes = _figure()
    axis = axes[0, 0]
    for resolution in sorted({result["resolution"] for result in fvd["results"]}):
        results = [result for result in fvd["results"] if result["resolution"] == resolution]
        starts = [result["window_start"] for result in results]
        axis.plot(starts, [result["fvd"]["mean"] for result in results], "-o", label=f"FVD, {resolution} px")
        axis.plot(starts, [result["fvd_star"]["mean"] for result in results], "--o", label=f"FVD*, {resolution} px")
    axis.set_xlabel("first frame of the window")
    axis.set_ylabel("FVD")
    title = "FVD per window of the rollout"
    axis.set_title(title + (f"\n({STAND_IN_LABEL})" if fvd.get("stand_in_weights") else ""), fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    _save(figure, path)


def write_plots(report: dict, out: Path) -> dict[str, str]:
    """Draw every plot into <out>/plots; returns title → path relative to `out`."""
    plots = {"Per-frame PSNR": "frame_psnr.png", "Per-frame SSIM": "frame_ssim.png",
             "Codebook usage per level": "codebook_usage.png"}
    frame_curve(report, "psnr", out / PLOTS_DIR / plots["Per-frame PSNR"])
    frame_curve(report, "ssim", out / PLOTS_DIR / plots["Per-frame SSIM"])
    codebook_usage(report, out / PLOTS_DIR / plots["Codebook usage per level"])
    fvd = report["fvd"]
    if fvd["status"] == "computed" and len({result["window_start"] for result in fvd["results"]}) > 1:
        plots["FVD per rollout window"] = "fvd_windows.png"
        fvd_windows(report, out / PLOTS_DIR / plots["FVD per rollout window"])
    return {title: f"{PLOTS_DIR}/{name}" for title, name in plots.items()}
