"""index.html: one page to look at an eval — the protocol, the tables, the plots, and per clip a row of looping
videos (ground truth | reconstruction | copy-last-frame | samples). Self-contained: only relative links to the
folder's own MP4s and PNGs (works from file://), no script or style from elsewhere.
"""

from __future__ import annotations

from html import escape

from vqvideo.evaluation.records import system_names
from vqvideo.evaluation.run import VIDEOS_DIR
from vqvideo.evaluation.tables import STAND_IN_LABEL, Table, all_tables, protocol_lines

DISPLAY_MIN = 128  # px: smaller videos are shown enlarged (pixelated), so codes and motion stay visible
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 1400px; }
table { border-collapse: collapse; margin: 0.5em 0 0.3em; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; font-size: 14px; }
th { background: #f2f2f2; }
.note { color: #555; font-size: 13px; margin: 0.2em 0; }
.warning { background: #fff0c2; border: 2px solid #d9a400; padding: 0.6em; font-weight: bold; }
.clips td { text-align: center; vertical-align: top; }
video { image-rendering: pixelated; background: #000; display: block; }
figure { display: inline-block; vertical-align: top; margin: 4px; }
img.plot { width: 560px; border: 1px solid #ddd; }
"""
SYNC_SCRIPT = """
window.addEventListener("load", () => {
  for (const video of document.querySelectorAll("video")) { video.currentTime = 0; video.play().catch(() => {}); }
});
"""


def html_table(table: Table) -> str:
    head = "".join(f"<th>{escape(column)}</th>" for column in table.columns)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(cell))}</td>" for cell in row) + "</tr>" for row in table.rows)
    notes = "".join(f'<p class="note">{escape(note)}</p>' for note in table.notes)
    return f'<h2 id="{table.key}">{escape(table.title)}</h2><table><tr>{head}</tr>{body}</table>{notes}'


def clip_rows(report: dict, limit: int) -> str:
    """The videos table: per clip, its name and scores, then one looping video per system."""
    clips = report["clips"]["list"][:limit]
    systems = system_names(report["protocol"]["samples_per_clip"])
    size = max(DISPLAY_MIN, report["protocol"]["resolution"])
    quality = report["frame_quality"]["systems"]
    head = "<th>clip</th>" + "".join(f"<th>{escape(system)}</th>" for system in systems)
    rows = []
    for position, clip in enumerate(clips):
        name = escape(clip["name"])
        scores = (f"PSNR samples {quality['sample_mean']['psnr']['per_clip'][position]:.2f} dB<br>"
                  f"copy-last {quality['copy_last']['psnr']['per_clip'][position]:.2f} dB")
        cells = "".join(
            f'<td><video src="{VIDEOS_DIR}/{escape(system)}/{name}.mp4" width="{size}" height="{size}" autoplay loop '
            f'muted playsinline></video></td>' for system in systems)
        rows.append(f'<tr><td>{name}<br><span class="note">{scores}</span></td>{cells}</tr>')
    shown = len(clips)
    total = len(report["clips"]["list"])
    note = (f'<p class="note">Showing {shown} of {total} clips (--html_clips); every video is in {VIDEOS_DIR}/'
            f'&lt;system&gt;/&lt;clip&gt;.mp4.</p>' if shown < total else "")
    return (f'<h2 id="videos">Videos</h2><p class="note">Looping, in sync: the first '
            f'{report["protocol"]["given_frames"]} frames are given (samples show their VQ-VAE reconstruction, '
            f'copy-last the ground truth), the rest predicted.</p>{note}'
            f'<table class="clips"><tr>{head}</tr>{"".join(rows)}</table>')


def render_html(report: dict, plots: dict[str, str], html_clips: int = 24) -> str:
    """plots: title → relative PNG path."""
    warning = ""
    if report["fvd"].get("stand_in_weights"):
        warning = (f'<p class="warning">FVD on this page comes from a randomly initialised I3D ({STAND_IN_LABEL}): '
                   "a plumbing check only, not a result.</p>")
    elif report["fvd"]["status"] != "computed":
        warning = f'<p class="warning">FVD {escape(report["fvd"]["status"])}: {escape(report["fvd"]["reason"])}</p>'
    protocol = "".join(f"<li>{escape(line)}</li>" for line in protocol_lines(report))
    tables = "".join(html_table(table) for table in all_tables(report))
    images = "".join(f'<figure><img class="plot" src="{escape(path)}" alt="{escape(title)}">'
                     f"<figcaption>{escape(title)}</figcaption></figure>" for title, path in plots.items())
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>vqvideo eval</title>'
            f"<style>{STYLE}</style></head><body><h1>vqvideo eval</h1>{warning}"
            f'<p class="note">Numbers from report.json in this folder (report.md has the same tables).</p>'
            f"<h2>Protocol</h2><ul>{protocol}</ul>{tables}<h2 id=\"plots\">Plots</h2>{images}"
            f"{clip_rows(report, html_clips)}<script>{SYNC_SCRIPT}</script></body></html>\n")
