"""The Markdown page of a GPU check report (benchmarks/gpu_check.py): rendered from its JSON report, nothing typed."""

from __future__ import annotations


def table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows] + [""]


def cell(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value).replace("|", "\\|").replace("\n", " ")[:300]


def status(outcome: dict) -> str:
    if "skipped" in outcome:
        return f"skipped: {outcome['skipped']}"
    return "ok" if outcome["ok"] else f"**FAILED**: {outcome.get('error', '')}"


def parts_section(report: dict) -> list[str]:
    rows = [[name, status(outcome), outcome.get("seconds")] for name, outcome in report["parts"].items()]
    return table(["part", "status", "seconds"], rows)


def steps_section(report: dict) -> list[str]:
    lines = [f"## Paper configs (experiments/kinetics600_256; {report['profile']}): training steps, synthetic inputs",
             "",
             f"Peak for MFU: {report['peak']['source']}. {report['notes']['tflops']}; memory: "
             f"{report['notes']['memory']}.", ""]
    rows = [[stage, report["batch_size"][stage], report["oom_batch_sizes"][stage] or None, report["step"][stage],
             report["memory"][stage], report["tflops"][stage], report["mfu"][stage]] for stage in report["step"]]
    return lines + table(["stage", "batch", "out of memory at", "step s (median)", "peak GiB", "TFLOP/s", "MFU"],
                         rows)


def sampler_section(sampler: dict) -> list[str]:
    lines = ["## Sampler: cached vs naive on the device", "",
             f"Identical codes everywhere: {cell(sampler.get('identical'))}. {sampler.get('note', '')}.", ""]
    if "error" in sampler or "skipped" in sampler:
        return lines + [cell(sampler.get("error") or sampler.get("skipped")), ""]
    rows = [[group, prior, row["positions"], row["naive_s"], row["cached_s"], row["forward_s"],
             row["naive_s"] / row["cached_s"], row["cached_s"] / row["forward_s"], row["identical"],
             row["max_logit_error"]]
            for group in ("demo", "bench") for prior, row in sampler[group].items()]
    return lines + table(["configs", "prior", "positions", "naive s", "cached s", "forward s", "naive/cached",
                          "cached/forward", "identical", "max abs Δlogit"], rows)


def pipeline_section(pipeline: dict) -> list[str]:
    lines = ["## Demo pipeline through `vqvideo` (a few steps per stage)", ""]
    if "stages" not in pipeline:
        return lines + [cell(pipeline.get("error") or pipeline.get("skipped")), ""]
    rows = [[name, status(outcome), outcome.get("seconds"), (outcome.get("result") or {}).get("command")]
            for name, outcome in pipeline["stages"].items()]
    return lines + table(["stage", "status", "seconds", "command"], rows)


def key_values(title: str, values: dict) -> list[str]:
    return [f"## {title}", ""] + table(["", ""], [[key, value] for key, value in values.items()])


def markdown(report: dict) -> str:
    lines = [f"# vqvideo GPU check: {report['device']} ({report['profile']}), {report['date']}", "",
             f"torch {report['torch']}, CUDA {report['cuda']}; {report['total_seconds']} s; failed: "
             f"{', '.join(report['failed']) or 'nothing'}.", ""]
    lines += parts_section(report) + steps_section(report) + sampler_section(report["sampler"])
    lines += pipeline_section(report["pipeline"])
    lines += key_values("GPU video decoding", report["decode"]) + key_values("torch.compile (paper VQ-VAE step)",
                                                                              report["compile"])
    return "\n".join(lines)
