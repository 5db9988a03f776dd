"""The `vqvideo` command: one entry point for every stage.

`fit`, `validate`, `test` and (without `--vqvae`) `predict` are LightningCLI with `parser_mode="omegaconf"`,
so configs in `experiments/` may interpolate. The others are plain argparse tools:
`data-summary`, `describe`, `precompute`, `predict --vqvae ...` (video prediction) and `demo`.
"""

from __future__ import annotations

import sys
from typing import Callable

LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test", "predict")
VIDEO_PREDICT_FLAGS = ("--vqvae", "--top", "--bottom", "--input")


def _tool(module: str) -> Callable[[list[str]], int | None]:
    import importlib

    return importlib.import_module(module).main


TOOLS = {
    "data-summary": "vqvideo.data.summary",
    "describe": "vqvideo.describe",
    "precompute": "vqvideo.cache.precompute",
    "predict": "vqvideo.predict",
    "demo": "vqvideo.demo",
    "human-eval": "vqvideo.human_eval.command",
}


def run_lightning_cli(args: list[str] | None):
    """args None: LightningCLI reads sys.argv itself (passing both makes it warn on every run)."""
    from vqvideo.lit.cli import build_cli

    return build_cli(args)


def _wants_video_prediction(args: list[str]) -> bool:
    return any(a.split("=")[0] in VIDEO_PREDICT_FLAGS for a in args)


USAGE = """usage: vqvideo {fit,validate,test,predict,precompute,describe,data-summary,demo,human-eval} ...

  fit|validate|test|predict  LightningCLI (--config experiments/<exp>/<stage>.yaml, --help for all options)
  predict --vqvae CKPT --top CKPT --bottom CKPT --input PATH --out DIR   predict 12 frames from 4
  precompute                 encode a dataset once into the sharded code cache
  describe --config FILE     parameters, latent shapes, bits ratio and GFLOPs of a config
  data-summary ROOT          index a video folder and report readable videos and clips
  demo                       the whole pipeline on the bundled real clips
  human-eval make-pairs|serve|report   blinded side-by-side preference study of two systems (Table 1)
"""


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "predict" and _wants_video_prediction(rest):
        return _tool(TOOLS["predict"])(rest) or 0
    if command in LIGHTNING_SUBCOMMANDS:
        run_lightning_cli(None if argv is None else args)
        return 0
    if command in TOOLS:
        return _tool(TOOLS[command])(rest) or 0
    print(f"vqvideo: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
