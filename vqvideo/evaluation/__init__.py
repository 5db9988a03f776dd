"""`vqvideo eval`'s library: which clips an evaluation scores, what it records per clip, and the report built from
those records (report.json, report.md, index.html, plots). The tool is vqvideo/evaluate.py; the prediction loop's
module is vqvideo/lit/eval_module.py and its writer vqvideo/callbacks/eval_writer.py.

- clips.py: the evaluated clips (deterministic windows, stable names) and each clip's sampling key.
- run.py: the eval folder's layout, its recorded identity (refuse another command's folder), leftovers.
- records.py: per clip: scores against ground truth, its videos, codes and the record file written last.
- summary.py: every record → the numbers of report.json (frame quality, compression, levels, FVD, throughput).
- report.py: report.json (records + summary + the tool's header + the paper's Table 2) and the files rendered from it.
- tables.py, markdown.py, html.py, plots.py: report.md, index.html and the PNG plots, all rendered from report.json.
"""
