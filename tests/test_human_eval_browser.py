"""The rating page in a real browser: Debian's chromium driven by Playwright (no browser download), against
the real `vqvideo human-eval serve` process, which is SIGKILLed and restarted part-way through."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from human_eval_helpers import NAMES, ServeProcess, write_fake_eval
from vqvideo.cli import main
from vqvideo.human_eval.pairs import make_pairs, read_pair_set

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--autoplay-policy=no-user-gesture-required"]
CLIPS = tuple(f"clip_{k:02d}" for k in range(5))
# (how, what) for the five pairs, in the order the rater sees them
ACTIONS = [("click", "left"), ("key", "ArrowRight"), ("key", "Space"), ("click", "same"), ("click", "right")]
KEY_CHOICE = {"ArrowRight": "right", "ArrowLeft": "left", "Space": "same"}

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at "
                                "/usr/bin/chromium (apt-get install -y chromium; .ci/run installs it)")


def _wait_for_pair(page, index: int, total: int) -> dict:
    """Wait until pair `index` is shown with both videos playable, and return what the page shows."""
    page.wait_for_function(
        "([text]) => document.getElementById('progress').textContent === text"
        " && !document.getElementById('choose-left').disabled", arg=[f"Pair {index} of {total}"], timeout=10_000)
    return page.evaluate("""() => {
        const video = (id) => { const v = document.getElementById(id);
            return {path: new URL(v.src).pathname, width: v.videoWidth, ready: v.readyState}; };
        return {left: video('left-video'), right: video('right-video'),
                rater: document.getElementById('rater-id').textContent};
    }""")


def _act(page, how: str, what: str) -> str:
    if how == "click":
        page.click(f"#choose-{what}")
        return what
    page.keyboard.press(what)
    return KEY_CHOICE[what]


def _system_of(pair_set) -> dict[str, str]:
    """/videos/<name> -> "a" or "b", from the manifest (independent of the server's randomisation)."""
    return {**{f"/videos/{Path(p.a).name}": "a" for p in pair_set.pairs},
            **{f"/videos/{Path(p.b).name}": "b" for p in pair_set.pairs}}


def _check_videos_loop_in_sync(page) -> None:
    page.wait_for_function("() => Number(document.getElementById('videos').dataset.loops) >= 1", timeout=10_000)
    times = page.evaluate("() => [document.getElementById('left-video').currentTime,"
                          " document.getElementById('right-video').currentTime,"
                          " document.getElementById('left-video').paused, document.getElementById('right-video').paused]")
    assert not times[2] and not times[3], "both videos play"
    assert abs(times[0] - times[1]) < 0.25, f"the two videos drifted apart: {times}"


def test_scripted_rater_clicks_and_keys_across_a_server_kill(tmp_path, capsys):
    from playwright.sync_api import sync_playwright

    eval_dir = write_fake_eval(tmp_path / "eval", clips=CLIPS)
    make_pairs(eval_dir, eval_dir, tmp_path / "pairs", names=NAMES, b_system="copy_last", progress=False)
    system_of = _system_of(read_pair_set(tmp_path / "pairs"))
    server = ServeProcess(tmp_path / "pairs", tmp_path / "judgments.db").start()
    expected, requested = Counter(), []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.on("request", lambda request: requested.append(request.url))
            page.goto(f"{server.url}/?rater=carol")
            for index, (how, what) in enumerate(ACTIONS, start=1):
                shown = _wait_for_pair(page, index, len(CLIPS))
                assert shown["rater"] == "carol" and shown["left"]["width"] == 64 and shown["right"]["width"] == 64
                if index == 1:
                    _check_videos_loop_in_sync(page)
                if index == 2:  # killed while the rater decides: the judgment is sent to a dead server
                    server.kill()
                choice = _act(page, how, what)
                expected[choice if choice == "same" else system_of[shown[choice]["path"]]] += 1
                if index == 2:
                    page.wait_for_function("() => document.getElementById('message').textContent"
                                           ".includes('Cannot reach the server')", timeout=10_000)
                    server.start()  # same port, same database: the page's retry now goes through
                    _wait_for_pair(page, 3, len(CLIPS))
                    page.goto(f"{server.url}/")  # rater remembered, continues at pair 3
            page.wait_for_selector("#done", state="visible", timeout=10_000)
            assert page.is_hidden("#study")
            page.click("#change-rater")
            page.fill("#rater-input", "dave")
            page.press("#rater-input", "Enter")
            _wait_for_pair(page, 1, len(CLIPS))  # dave is offered a pair but judges nothing
            page_text = page.content()
            browser.close()
    finally:
        server.kill()

    for secret in [*NAMES.split(","), "sample_0", "copy_last", "vqvideo", "copy-last"]:
        assert secret not in page_text and not any(secret in url for url in requested)
    capsys.readouterr()
    assert main(["human-eval", "report", "--db", str(tmp_path / "judgments.db"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["judgments"], summary["raters"], summary["pairs"]) == (5, 1, 5)
    assert [summary[k]["count"] for k in ("prefer_a", "prefer_b", "indifferent")] == \
           [expected["a"], expected["b"], expected["same"]]
    assert summary["side_chosen"] == {"left": 1, "right": 2, "same": 2}
