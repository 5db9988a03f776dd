"""`vqvideo human-eval report`: the study's results from its database, as in the paper's Table 1.

Every judgment counts once: prefer A, prefer B or indifferent ("can't tell"), with the click mapped back to
the systems through the side recorded with it. Each fraction has a 95% Wilson score interval (judgments
treated as independent; judgments by one rater or of one pair are correlated in truth, so the intervals are
optimistic). Agreement between raters is Fleiss' kappa over the pairs judged by >= 2 raters (unequal rater
counts allowed; each pair weighs equally) plus the mean percent agreement over the same pairs. The summary
dict is the single source: `--json` prints it, the Markdown is rendered from it.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from vqvideo.human_eval.db import Study

Z_95 = 1.959963984540054  # two-sided 95% quantile of the standard normal
INTERVAL = ("Wilson score interval, 95% (z = 1.96), per proportion, treating judgments as independent")
AGREEMENT = ("Fleiss' kappa over pairs with >= 2 judgments (categories prefer A / prefer B / indifferent; "
             "unequal raters per pair, each pair weighted equally); percent agreement = mean over those pairs of "
             "the fraction of rater pairs that chose the same category")
CATEGORIES = (("prefer_a", "a"), ("prefer_b", "b"), ("indifferent", "same"))
# Predicting Video with VQVAE, Table 1 and its §4 text (reference only: another model, dataset and raters).
PAPER_TABLE1 = {
    "source": "Predicting Video with VQVAE (paper), Table 1: human evaluation on Kinetics-600 at 64x64, "
              "15 raters, 405 judgments",
    "a": "Video VQ-VAE", "b": "Luc et al. (2020)", "judgments": 405,
    "prefer_a": 0.657, "prefer_b": 0.128, "indifferent": 0.215,
}


def wilson_interval(count: int, total: int, z: float = Z_95) -> list[float] | None:
    """Wilson score interval of the proportion count/total (None when total is 0)."""
    if total == 0:
        return None
    p = count / total
    denominator = 1 + z * z / total
    center = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return [max(0.0, center - half), min(1.0, center + half)]


def proportion(count: int, total: int) -> dict[str, Any]:
    return {"count": count, "fraction": count / total if total else None, "ci95": wilson_interval(count, total)}


@dataclass(frozen=True)
class Agreement:
    kappa: float | None  # None when undefined: no pair with 2 judgments, or every judgment in one category
    percent_agreement: float | None
    pairs_used: int


def fleiss_kappa(counts: list[list[int]]) -> Agreement:
    """counts[i][j]: judgments of item i in category j. Items with < 2 judgments are left out."""
    rows = [row for row in counts if sum(row) >= 2]
    if not rows:
        return Agreement(None, None, 0)
    agreement = [(sum(n * n for n in row) - sum(row)) / (sum(row) * (sum(row) - 1)) for row in rows]
    mean_agreement = sum(agreement) / len(rows)
    total = sum(sum(row) for row in rows)
    chance = sum((sum(row[j] for row in rows) / total) ** 2 for j in range(len(rows[0])))
    kappa = None if chance >= 1 else (mean_agreement - chance) / (1 - chance)
    return Agreement(kappa, mean_agreement, len(rows))


def summarize(study: Study) -> dict[str, Any]:
    """The report as one JSON-ready dict (keys: judgments, raters, pairs, prefer_a, prefer_b, indifferent, ...)."""
    judgments = study.judgments
    total = len(judgments)
    preferred = Counter(j.preferred for j in judgments)
    per_pair = {pair_id: Counter() for pair_id in study.pair_ids}
    per_rater: dict[str, Counter] = {}
    for j in judgments:
        per_pair.setdefault(j.pair_id, Counter())[j.preferred] += 1
        per_rater.setdefault(j.rater, Counter())[j.preferred] += 1
    counts_per_pair = {pair_id: sum(c.values()) for pair_id, c in per_pair.items()}
    agreement = fleiss_kappa([[c[key] for _, key in CATEGORIES] for c in per_pair.values()])
    summary = {
        "db": str(study.db_path), "pair_set_id": study.pair_set_id,
        "systems": {"a": study.names[0], "b": study.names[1]},
        "judgments": total, "raters": len(per_rater), "pairs": len(study.pair_ids),
        "pairs_judged": sum(1 for n in counts_per_pair.values() if n),
        **{name: proportion(preferred[key], total) for name, key in CATEGORIES},
        "interval": INTERVAL,
        "judgments_per_pair": {"min": min(counts_per_pair.values(), default=0),
                               "mean": total / len(counts_per_pair) if counts_per_pair else 0.0,
                               "max": max(counts_per_pair.values(), default=0), "by_pair": counts_per_pair},
        "by_rater": {rater: {"judgments": sum(c.values()), **{name: c[key] for name, key in CATEGORIES}}
                     for rater, c in sorted(per_rater.items())},
        "agreement": {"method": AGREEMENT, "kappa": agreement.kappa,
                      "percent_agreement": agreement.percent_agreement, "pairs_used": agreement.pairs_used},
        "side_chosen": {side: sum(1 for j in judgments if j.choice == side) for side in ("left", "right", "same")},
        "paper_table1": PAPER_TABLE1,
    }
    return summary


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _ci(interval: list[float] | None) -> str:
    return "n/a" if interval is None else f"[{_percent(interval[0])}, {_percent(interval[1])}]"


def _number(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def render_markdown(summary: dict[str, Any]) -> str:
    """The summary as Markdown: results table, coverage, agreement, per-rater counts, the paper for reference."""
    a, b = summary["systems"]["a"], summary["systems"]["b"]
    rows = [(f"prefer {a} (A)", summary["prefer_a"]), (f"prefer {b} (B)", summary["prefer_b"]),
            ("indifferent (can't tell)", summary["indifferent"])]
    per_pair, agreement, sides = summary["judgments_per_pair"], summary["agreement"], summary["side_chosen"]
    lines = [f"# Human preference study: {a} (A) vs {b} (B)", "",
             f"{summary['judgments']} judgments by {summary['raters']} raters of {summary['pairs_judged']} of "
             f"{summary['pairs']} pairs (pair set {summary['pair_set_id']}, database {summary['db']}).", "",
             "| | count | fraction | 95% CI |", "|---|---:|---:|---|"]
    lines += [f"| {label} | {p['count']} | {_percent(p['fraction'])} | {_ci(p['ci95'])} |" for label, p in rows]
    lines += ["", f"95% CI: {summary['interval']}.", "",
              f"Judgments per pair: min {per_pair['min']}, mean {per_pair['mean']:.2f}, max {per_pair['max']}.",
              f"Agreement between raters over the {agreement['pairs_used']} pairs judged >= 2 times: Fleiss' kappa "
              f"{_number(agreement['kappa'])}, percent agreement {_percent(agreement['percent_agreement'])} "
              f"(method: {agreement['method']}).",
              f"Side chosen: left {sides['left']}, right {sides['right']}, can't tell {sides['same']} "
              "(sides are randomised per rater and pair, so a large left/right imbalance means a position bias).",
              "", "| rater | judgments | prefer A | prefer B | indifferent |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {rater} | {c['judgments']} | {c['prefer_a']} | {c['prefer_b']} | {c['indifferent']} |"
              for rater, c in summary["by_rater"].items()]
    paper = summary["paper_table1"]
    lines += ["", "## For reference: the paper's Table 1 (not this study)", "", f"{paper['source']}.", "",
              f"| prefer {paper['a']} | prefer {paper['b']} | indifferent |", "|---:|---:|---:|",
              f"| {_percent(paper['prefer_a'])} | {_percent(paper['prefer_b'])} | {_percent(paper['indifferent'])} |"]
    return "\n".join(lines) + "\n"
