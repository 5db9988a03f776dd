"""The study report: Wilson intervals, Fleiss' kappa, counts mapped back to systems, Markdown and --json."""

from __future__ import annotations

import json
import math

import pytest

from human_eval_helpers import NAMES, write_fake_eval
from vqvideo.cli import main
from vqvideo.human_eval.db import JudgmentStore, read_study
from vqvideo.human_eval.pairs import make_pairs, read_pair_set
from vqvideo.human_eval.report import Z_95, fleiss_kappa, summarize, wilson_interval

# Fleiss' kappa worked example (10 subjects, 14 raters, 5 categories): P-bar 0.378, P_e 0.213, kappa 0.210.
FLEISS_EXAMPLE = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
                  [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
# PLANNED[rater][pair index] = the system that rater prefers ("same" = can't tell); dan judges one pair only
PLANNED = {"ann": ["a", "a", "same"], "ben": ["a", "b", "same"], "cat": ["a", "a", "b"], "dan": ["b", "b", "b"]}
DAN_JUDGES = 1


def test_wilson_interval_matches_closed_forms():
    low, high = wilson_interval(0, 10)
    assert low == 0 and high == pytest.approx(Z_95 ** 2 / (10 + Z_95 ** 2))  # x = 0: upper = z^2 / (n + z^2)
    low, high = wilson_interval(5, 10)
    assert (low, high) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0) and wilson_interval(0, 0) is None
    low, high = wilson_interval(266, 405)  # the paper's 65.7% of 405
    assert low < 266 / 405 < high and high - low == pytest.approx(2 * Z_95 * math.sqrt(0.657 * 0.343 / 405), rel=0.02)


def test_fleiss_kappa_matches_the_worked_example_and_edge_cases():
    agreement = fleiss_kappa(FLEISS_EXAMPLE)
    assert agreement.kappa == pytest.approx(0.210, abs=5e-4)
    assert agreement.percent_agreement == pytest.approx(0.378, abs=5e-4) and agreement.pairs_used == 10
    perfect = fleiss_kappa([[3, 0, 0], [0, 2, 0], [0, 0, 4]])
    assert perfect.kappa == pytest.approx(1.0) and perfect.percent_agreement == 1.0
    one_category = fleiss_kappa([[3, 0, 0], [2, 0, 0]])
    assert one_category.kappa is None and one_category.percent_agreement == 1.0  # kappa undefined: P_e = 1
    assert fleiss_kappa([[1, 0, 0], [0, 0, 0]]).pairs_used == 0  # single judgments carry no agreement


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A database of the PLANNED judgments, entered through the store as the server does; returns the db path
    and the (rater, pair index, system) of every judgment."""
    root = tmp_path_factory.mktemp("report")
    eval_dir = write_fake_eval(root / "eval")
    make_pairs(eval_dir, eval_dir, root / "pairs", names=NAMES, b_system="copy_last", progress=False)
    pair_set = read_pair_set(root / "pairs")
    pair_ids = [pair.pair_id for pair in pair_set.pairs]
    store = JudgmentStore(root / "judgments.db", pair_set)
    judged = []
    for rater, plan in PLANNED.items():
        for _ in range(DAN_JUDGES if rater == "dan" else len(plan)):
            offer = store.next_offer(rater)
            index = pair_ids.index(offer.pair_id)
            system = plan[index]
            choice = "same" if system == "same" else ("left" if system == offer.left_system else "right")
            store.record(rater, offer.pair_id, choice)
            judged.append((rater, index, system))
    store.next_offer("eve")  # offered, never judged: not a rater of the report
    return root / "judgments.db", judged


def test_summary_counts_map_back_to_systems(study):
    db, judged = study
    summary = summarize(read_study(db))
    total = len(judged)
    assert (summary["judgments"], summary["raters"], summary["pairs"], summary["pairs_judged"]) == (total, 4, 3, 3)
    for key, system in (("prefer_a", "a"), ("prefer_b", "b"), ("indifferent", "same")):
        count = sum(1 for _, _, s in judged if s == system)
        assert summary[key] == {"count": count, "fraction": count / total, "ci95": wilson_interval(count, total)}
    per_pair = [sum(1 for _, i, _ in judged if i == index) for index in range(3)]
    assert summary["judgments_per_pair"]["min"] == min(per_pair) and summary["judgments_per_pair"]["max"] == max(per_pair)
    assert summary["judgments_per_pair"]["mean"] == pytest.approx(total / 3)
    table = [[sum(1 for _, i, s in judged if i == index and s == system) for system in ("a", "b", "same")]
             for index in range(3)]
    agreement = fleiss_kappa(table)
    assert summary["agreement"]["kappa"] == pytest.approx(agreement.kappa)
    assert summary["agreement"]["pairs_used"] == 3 and "Fleiss" in summary["agreement"]["method"]
    assert summary["by_rater"]["dan"] == {"judgments": 1, "prefer_a": 0, "prefer_b": 1, "indifferent": 0}
    assert "eve" not in summary["by_rater"]
    assert sum(summary["side_chosen"].values()) == total
    assert summary["side_chosen"]["same"] == summary["indifferent"]["count"]
    assert "Wilson" in summary["interval"]
    assert summary["paper_table1"]["judgments"] == 405 and "paper" in summary["paper_table1"]["source"]


def test_report_command_prints_markdown_or_one_json_object(study, capsys):
    db, judged = study
    assert main(["human-eval", "report", "--db", str(db), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)  # one JSON object and nothing else
    for key in ("judgments", "raters", "pairs"):
        assert isinstance(summary[key], int)
    for key in ("prefer_a", "prefer_b", "indifferent"):
        assert set(summary[key]) == {"count", "fraction", "ci95"} and len(summary[key]["ci95"]) == 2
    assert main(["human-eval", "report", "--db", str(db)]) == 0
    markdown = capsys.readouterr().out
    a, b = NAMES.split(",")
    count_a = sum(1 for _, _, s in judged if s == "a")
    assert f"| prefer {a} (A) | {count_a} | {100 * count_a / len(judged):.1f}% |" in markdown
    assert f"prefer {b} (B)" in markdown and "Wilson score interval" in markdown and "Fleiss' kappa" in markdown
    assert "the paper's Table 1 (not this study)" in markdown
    assert "| 65.7% | 12.8% | 21.5% |" in markdown and "405 judgments" in markdown


def test_report_refuses_a_missing_or_foreign_database(tmp_path, capsys):
    assert main(["human-eval", "report", "--db", str(tmp_path / "none.db")]) == 2
    assert "no such database" in capsys.readouterr().err
    (tmp_path / "notes.db").write_text("plain text, not SQLite " * 100)
    assert main(["human-eval", "report", "--db", str(tmp_path / "notes.db")]) == 2
    assert "not a human-eval study database" in capsys.readouterr().err
