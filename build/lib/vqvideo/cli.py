"""The `vqvideo` command: one entry point for every stage.

`fit`, `validate` and `test` are LightningCLI (`parser_mode="omegaconf"`, so configs in `experiments/` may
interpolate). Every other command is a tool: a module with `build_parser()` (jsonargparse) and `main(argv) -> int`,
listed in `TOOLS` below. The pipeline's tools live in `vqvideo/commands/`; the two features that are tools of their
own keep their command inside their package (`evaluation/command.py`, `human_eval/command.py`). Library code never
lives in a command module. A tool's module is imported only when it runs, so `vqvideo --help` stays fast.
"""

from __future__ import annotations

import importlib
import sys

LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test")
TOOLS = {
    "predict": "vqvideo.commands.predict",
    "precompute": "vqvideo.commands.precompute",
    "describe": "vqvideo.commands.describe",
    "data-summary": "vqvideo.commands.data_summary",
    "demo": "vqvideo.commands.demo",
    "human-eval": "vqvideo.human_eval.command",
    "eval": "vqvideo.evaluation.command",
}

USAGE = """usage: vqvideo {fit,validate,test,predict,precompute,eval,describe,data-summary,demo,human-eval} ...

  fit|validate|test          LightningCLI (--config experiments/<exp>/<stage>.yaml [--ckpt_path CKPT], --help)
  predict --vqvae CKPT --top CKPT --bottom CKPT --input PATH --out DIR   predict 12 frames from 4
  precompute                 encode a dataset once into the sharded code cache
  eval --vqvae CKPT --top CKPT --bottom CKPT [--i3d PATH] --out DIR   score predictions: report + videos
  describe --config FILE     parameters, latent shapes, bits ratio and GFLOPs of a config
                             (--gpu H100 --mfu 0.4: the schedule's projected GPU-days)
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
    if command in LIGHTNING_SUBCOMMANDS:
        from vqvideo.files import DiskFullError
        from vqvideo.lit.cli import build_cli

        try:
            build_cli(None if argv is None else args)  # None: LightningCLI reads sys.argv itself
        except DiskFullError as error:
            print(f"vqvideo {command}: {error}", file=sys.stderr)
            return 2
        return 0
    if command in TOOLS:
        return importlib.import_module(TOOLS[command]).main(rest) or 0
    print(f"vqvideo: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
