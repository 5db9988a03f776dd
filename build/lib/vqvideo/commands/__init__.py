"""The pipeline's commands (`vqvideo predict|precompute|describe|data-summary|demo`): one module per command, each
with `build_parser()` and `main(argv) -> int`, run by `vqvideo/cli.py`. They parse, call the library and print."""
