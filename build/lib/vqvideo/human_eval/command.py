"""`vqvideo human-eval`: a blinded side-by-side preference study of two systems (the paper's Table 1).

    vqvideo human-eval make-pairs --a DIR --b DIR [--a_system S] [--b_system S] [--names A,B] --out DIR
    vqvideo human-eval serve --pairs DIR --db FILE [--host 127.0.0.1] [--port 8000]
    vqvideo human-eval report --db FILE [--json]
"""

from __future__ import annotations

import json
import socket
import sys

from jsonargparse import ActionConfigFile, ActionYesNo, ArgumentParser

from vqvideo.human_eval.pairs import PairsError

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def _make_pairs_parser() -> ArgumentParser:
    parser = ArgumentParser(description="Pair two systems' videos of the same clips (same file stem) into a pair set.")
    parser.add_argument("--config", action=ActionConfigFile, help="YAML with any of these options")
    parser.add_argument("--a", type=str, required=True, help="system A: a `vqvideo eval` folder or a folder of MP4s")
    parser.add_argument("--b", type=str, required=True, help="system B: a `vqvideo eval` folder or a folder of MP4s")
    parser.add_argument("--a_system", type=str | None, default=None,
                        help="system of an eval folder for A: videos/<a_system>/ (default sample_0)")
    parser.add_argument("--b_system", type=str | None, default=None,
                        help="system of an eval folder for B, e.g. copy_last (default sample_0)")
    parser.add_argument("--names", type=str | None, default=None,
                        help="'A,B': the systems' names in the report (never shown to raters)")
    parser.add_argument("--out", type=str, required=True, help="the pair set folder to write")
    parser.add_argument("--overwrite", action=ActionYesNo, default=False, help="replace another pair set in --out")
    return parser


def _serve_parser() -> ArgumentParser:
    parser = ArgumentParser(description="Serve the rating page and its API for one pair set.")
    parser.add_argument("--config", action=ActionConfigFile, help="YAML with any of these options")
    parser.add_argument("--pairs", type=str, required=True, help="pair set folder (make-pairs --out)")
    parser.add_argument("--db", type=str, required=True, help="SQLite file of the judgments (created if absent)")
    parser.add_argument("--host", type=str, default="127.0.0.1",
                        help="address to bind; anything but localhost makes the study reachable from the network")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (0: any free port, printed)")
    return parser


def _report_parser() -> ArgumentParser:
    parser = ArgumentParser(description="Counts, fractions with 95% CIs and rater agreement of a study database.")
    parser.add_argument("--config", action=ActionConfigFile, help="YAML with any of these options")
    parser.add_argument("--db", type=str, required=True, help="SQLite file written by `serve`")
    parser.add_argument("--json", action=ActionYesNo, default=False, help="print one JSON object, not Markdown")
    return parser


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="vqvideo human-eval", description=__doc__.split("\n\n")[0])
    subcommands = parser.add_subcommands(dest="command")
    subcommands.add_subcommand("make-pairs", _make_pairs_parser(), help="pair two systems' videos into a pair set")
    subcommands.add_subcommand("serve", _serve_parser(), help="serve the rating page on localhost")
    subcommands.add_subcommand("report", _report_parser(), help="results with 95% CIs and agreement")
    return parser


def run_make_pairs(cfg) -> int:
    from vqvideo.human_eval.pairs import make_pairs

    result = make_pairs(cfg.a, cfg.b, cfg.out, cfg.names, cfg.a_system, cfg.b_system, cfg.overwrite)
    for side, stems in (("A", result.only_a), ("B", result.only_b)):
        if stems:
            print(f"{len(stems)} clips only in {side}, not paired: {', '.join(stems[:10])}"
                  f"{' ...' if len(stems) > 10 else ''}", file=sys.stderr)
    state = "unchanged" if result.unchanged else "written"
    print(f"pair set {result.out} ({result.pair_set_id}): {result.num_pairs} pairs, {state}")
    return 0


def bind(host: str, port: int) -> socket.socket:
    """The listening address, bound before the URL is printed (port 0: any free port)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restarted server takes its port back at once
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise ValueError(f"--host {host} --port {port}: cannot listen there ({err}); choose another --port") from err
    return sock


def run_serve(cfg) -> int:
    import uvicorn

    from vqvideo.human_eval.app import create_app

    app = create_app(cfg.pairs, cfg.db)
    if cfg.host not in LOCAL_HOSTS:
        print(f"warning: --host {cfg.host} makes the study reachable from other machines", file=sys.stderr)
    sock = bind(cfg.host, cfg.port)
    host, port = (f"[{cfg.host}]" if ":" in cfg.host else cfg.host), sock.getsockname()[1]
    print(f"human-eval: {len(app.state.pair_set.pairs)} pairs; open http://{host}:{port}/ "
          f"(or http://{host}:{port}/?rater=NAME). Results: vqvideo human-eval report --db {cfg.db}", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
    return 0


def run_report(cfg) -> int:
    from vqvideo.human_eval.db import read_study
    from vqvideo.human_eval.report import render_markdown, summarize

    summary = summarize(read_study(cfg.db))
    print(json.dumps(summary, indent=1) if cfg.json else render_markdown(summary), end="\n" if cfg.json else "")
    return 0


def main(argv: list[str] | None = None) -> int:
    cfg = build_parser().parse_args(argv)
    run = {"make-pairs": run_make_pairs, "serve": run_serve, "report": run_report}[cfg.command]
    try:
        return run(cfg[cfg.command])
    except (PairsError, ValueError) as err:  # messages name the file/value and the fix
        print(f"vqvideo human-eval {cfg.command}: {err}", file=sys.stderr)
        return 2
