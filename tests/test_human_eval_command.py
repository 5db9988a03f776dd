"""`vqvideo human-eval` on the command line, and `make human-eval-demo` end to end on a fake eval folder."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.error import URLError

from human_eval_helpers import free_port, request, write_fake_eval
from vqvideo.cli import main
from vqvideo.human_eval.command import build_parser

REPO = Path(__file__).resolve().parents[1]


def _make(*args: str) -> subprocess.Popen:
    """`make` in the repo with `install` treated as done and this interpreter's scripts as BIN."""
    command = ["make", "--no-print-directory", "-o", "install", *args, f"BIN={Path(sys.executable).parent}"]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def test_make_pairs_command_writes_a_pair_set_and_errors_name_the_fix(tmp_path, capsys):
    eval_dir = write_fake_eval(tmp_path / "eval", clips=("c0", "c1"))
    write_fake_eval(tmp_path / "eval_b", clips=("c1", "c2"), systems=("copy_last",))
    args = ["human-eval", "make-pairs", "--a", str(eval_dir), "--b", str(tmp_path / "eval_b"),
            "--b_system", "copy_last", "--names", "vqvideo,copy-last-frame", "--out", str(tmp_path / "pairs")]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "1 pairs, written" in captured.out
    assert "1 clips only in A, not paired: c0" in captured.err and "1 clips only in B, not paired: c2" in captured.err
    manifest = json.loads((tmp_path / "pairs" / "manifest.json").read_text())
    assert [manifest["systems"][s]["name"] for s in ("a", "b")] == ["vqvideo", "copy-last-frame"]
    assert main(args) == 0 and "unchanged" in capsys.readouterr().out
    assert main([*args[:-2], "--out", str(tmp_path / "pairs"), "--b_system", "sample_0"]) == 2
    assert "vqvideo human-eval make-pairs: " in capsys.readouterr().err


def test_serve_binds_localhost_by_default():
    cfg = build_parser().parse_args(["serve", "--pairs", "p", "--db", "d.db"])
    assert (cfg.serve.host, cfg.serve.port) == ("127.0.0.1", 8000)


def test_serve_refuses_a_busy_port_with_the_fix(tmp_path, capsys):
    eval_dir = write_fake_eval(tmp_path / "eval", clips=("c0",))
    assert main(["human-eval", "make-pairs", "--a", str(eval_dir), "--b", str(eval_dir), "--b_system", "copy_last",
                 "--out", str(tmp_path / "pairs")]) == 0
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["human-eval", "serve", "--pairs", str(tmp_path / "pairs"), "--db", str(tmp_path / "j.db"),
                     "--port", str(port)]) == 2
    assert f"--port {port}: cannot listen there" in capsys.readouterr().err


def test_make_human_eval_demo_without_an_eval_says_run_make_demo(tmp_path):
    process = _make("human-eval-demo", f"OUT={tmp_path / 'demo'}")
    output, _ = process.communicate(timeout=60)
    assert process.returncode != 0
    assert f"{tmp_path / 'demo'}/eval/report.json not found; run `make demo` first" in output


def test_make_human_eval_demo_pairs_sample_0_with_copy_last_and_serves(tmp_path):
    out = tmp_path / "demo"
    write_fake_eval(out / "eval")
    port = free_port()
    process = _make("human-eval-demo", f"OUT={out}", f"HUMAN_EVAL_PORT={port}")
    lines, status, body = [], None, b""
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(f"http://127.0.0.1:{port}/" in line for line in lines):
            lines.append(process.stdout.readline())
            assert process.poll() is None, "".join(lines)
        for _ in range(50):  # the port is bound when the URL is printed; uvicorn listens a moment later
            try:
                status, body = request(f"http://127.0.0.1:{port}/api/next?rater=demo")
                break
            except URLError:
                time.sleep(0.1)
        assert status == 200 and json.loads(body)["total"] == 3
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.communicate(timeout=30)
    manifest = json.loads((out / "human_eval" / "pairs" / "manifest.json").read_text())
    assert [manifest["systems"][s]["name"] for s in ("a", "b")] == ["vqvideo", "copy-last-frame"]
    assert manifest["systems"]["b"]["source"].endswith("videos/copy_last")
    assert manifest["systems"]["a"]["source"].endswith("videos/sample_0")
    assert (out / "human_eval" / "judgments.db").is_file()
