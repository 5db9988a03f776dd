"""report.md: the protocol card, every table and the plots, rendered from report.json."""

from __future__ import annotations

from vqvideo.evaluation.tables import Table, all_tables, protocol_lines


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(table: Table) -> list[str]:
    lines = [f"## {table.title}", "", "| " + " | ".join(_cell(c) for c in table.columns) + " |",
             "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in table.rows]
    return lines + [""] + [f"- {note}" for note in table.notes] + [""]


def render_markdown(report: dict, plots: dict[str, str]) -> str:
    """plots: title → relative PNG path."""
    lines = ["# vqvideo eval report", "", "Every number below comes from report.json (same folder); index.html shows "
             "the videos.", "", "## Protocol", ""]
    lines += [f"- {line}" for line in protocol_lines(report)] + [""]
    for table in all_tables(report):
        lines += markdown_table(table)
    if plots:
        lines += ["## Plots", ""] + [f"![{title}]({path})" for title, path in plots.items()] + [""]
    return "\n".join(lines)
