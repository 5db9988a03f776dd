"""`vqvideo predict --vqvae CKPT --top CKPT --bottom CKPT --input PATH --out DIR`: 4 given frames → 16 frames.

For each input video the clip is read from its start (or `--start_frame`) exactly as in training (shorter side
resized to the VQ-VAE's resolution, center crop; clip length, stride and resolution come from the VQ-VAE
checkpoint), K futures are sampled (vqvideo/sampling/pipeline.py) and written as `<name>.mp4` and `<name>.gif`
laid out [ground truth | sample 1 | ... | sample K] (vqvideo/panels.py), plus the codes `<name>.npz`.
`--input embedded:val` predicts the held-out end of each bundled clip (never trained on).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Iterator, Literal

import numpy as np
import torch
from jsonargparse import ActionConfigFile, ArgumentParser, Namespace
from tqdm.auto import tqdm

from vqvideo.data.inputs import InputSpec, LoadedInput, load_inputs, resolve_inputs
from vqvideo.data.sources import SourceError
from vqvideo.files import DiskFullError, atomic_write_json, atomic_write_npz, explain_disk_full
from vqvideo.lit.checkpoints import CheckpointError
from vqvideo.lit.prediction import input_spec, load_prediction_models
from vqvideo.panels import prediction_panel
from vqvideo.sampling import DEFAULT_SAMPLER, SAMPLER_NAMES, SamplingOptions, get_sampler
from vqvideo.sampling.base import task_generator
from vqvideo.sampling.pipeline import PredictionModels, predict_video, window_starts
from vqvideo.video_io import video_to_uint8, write_gif, write_mp4

SUMMARY_NAME = "summary.json"  # written last: its presence means the run finished
RESULT_KEYS = ("videos", "top", "bottom", "given_top", "given_bottom")
DISPLAY_SIZE = 128  # panels smaller than this are upscaled (nearest) so codes stay visible in the GIF


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="vqvideo predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", action=ActionConfigFile, help="YAML with any of these options")
    parser.add_argument("--vqvae", type=str, required=True, help="VQ-VAE checkpoint (e.g. outputs/demo/vqvae.ckpt)")
    parser.add_argument("--top", type=str, required=True, help="top prior checkpoint")
    parser.add_argument("--bottom", type=str, required=True, help="bottom prior checkpoint")
    parser.add_argument("--input", type=str, required=True,
                        help="a video file, a folder of videos, or 'embedded:val' (held-out end of the bundled clips)")
    parser.add_argument("--out", type=str, required=True, help="output folder for <name>.mp4/.gif/.npz")
    parser.add_argument("--num_samples", type=int, default=3, help="futures sampled per input (K)")
    parser.add_argument("--seed", type=int, default=0, help="same seed and arguments → same videos")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top_k", type=int, default=None, help="sample among the k most likely codes")
    parser.add_argument("--top_p", type=float, default=None, help="nucleus sampling mass")
    parser.add_argument("--batch_size", type=int, default=16, help="(input, sample) pairs sampled together")
    parser.add_argument("--start_frame", type=int, default=0,
                        help="first given frame (for embedded:val: counted from the start of the held-out part)")
    parser.add_argument("--sampler", type=Literal[SAMPLER_NAMES], default=DEFAULT_SAMPLER,
                        help="cached (fast) or naive: identical codes")
    parser.add_argument("--num_frames", type=int | None, default=None,
                        help="frames per predicted video (default: the VQ-VAE's clip length, 16); more: a rollout of "
                             "windows, each given the previous window's last frames")
    parser.add_argument("--fps", type=float | None, default=None, help="output frame rate (default: the source's)")
    parser.add_argument("--device", type=str, default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--num_threads", type=int, default=1,
                        help="CPU threads for torch (sampling runs many tiny ops: 1 is fastest, and ~20x faster than "
                             "2 on a busy CPU; codes depend on it, since float sums change with the thread count)")
    return parser


def write_prediction(out_dir: Path, item: LoadedInput, videos: torch.Tensor, codes: dict, spec: InputSpec,
                     window_starts: list[int], fps: float, meta: dict) -> list[Path]:
    """videos: (K, 3, N, H, W) float in [-1, 1]; codes: arrays (K, W, ...) keyed top/bottom/given_top/given_bottom.
    Writes <name>.mp4, <name>.gif and <name>.npz (all atomic); returns their paths."""
    truth = video_to_uint8(item.clip)  # (Tr, H, W, 3)
    samples = video_to_uint8(videos)  # (K, N, H, W, 3)
    scale = max(1, DISPLAY_SIZE // spec.resolution)
    panel = prediction_panel(truth, samples, spec.num_given_frames, scale=scale, window_starts=window_starts)
    paths = [write_mp4(out_dir / f"{item.name}.mp4", panel, fps), write_gif(out_dir / f"{item.name}.gif", panel, fps)]
    arrays = {key: value.astype(np.uint16) for key, value in codes.items()}  # codes < 65536: uint16 on disk
    arrays["meta"] = np.array(json.dumps(meta))
    paths.append(atomic_write_npz(out_dir / f"{item.name}.npz", arrays))
    return paths


def predict_inputs(models: PredictionModels, items: list[LoadedInput], spec: InputSpec,
                   args) -> Iterator[tuple[int, dict]]:
    """Sample args.num_samples futures (rollouts of args.num_frames frames) for every input, batch by batch. Each
    (input, sample) draws from its own generator (`task_generator(seed, input, sample)`), so a video depends on the
    seed, its input and its sample number, not on the batching. Yields (input index, its results) as they finish."""
    sampler = get_sampler(args.sampler, progress=True)  # a bar over the positions of each volume
    options = SamplingOptions(args.temperature, args.top_k, args.top_p)
    tasks = [(index, sample) for index in range(len(items)) for sample in range(args.num_samples)]
    results: dict[int, dict] = {index: {key: [] for key in RESULT_KEYS} for index in range(len(items))}
    with tqdm(total=len(tasks), desc="sampling", unit="video") as bar:
        for begin in range(0, len(tasks), args.batch_size):
            batch = tasks[begin:begin + args.batch_size]
            clips = torch.stack([items[index].clip[:, :spec.num_given_frames] for index, _ in batch])
            generators = [task_generator(args.seed, index, sample) for index, sample in batch]
            prediction = predict_video(models, clips, spec.num_frames, sampler, options, generators,
                                       spec.num_given_frames, args.num_frames)
            rows = {"videos": prediction.video, "top": prediction.codes.top, "bottom": prediction.codes.bottom,
                    "given_top": prediction.given_codes.top, "given_bottom": prediction.given_codes.bottom}
            for row, (index, _) in enumerate(batch):
                for key, values in rows.items():
                    results[index][key].append(values[row].cpu())
                if len(results[index]["videos"]) == args.num_samples:
                    yield index, {key: torch.stack(values) for key, values in results.pop(index).items()}
            bar.update(len(batch))


def output_bytes(items: list[LoadedInput], spec: InputSpec, num_samples: int) -> int:
    """A generous estimate of what the predictions of `items` take: the GIF and the MP4 of each upscaled panel at
    up to one byte per pixel each (the codes are far smaller)."""
    side = spec.resolution * max(1, DISPLAY_SIZE // spec.resolution)
    return len(items) * 2 * spec.num_frames * side * side * (num_samples + 1)


def run_meta(args: Namespace, spec: InputSpec, options: SamplingOptions) -> dict:
    """What a prediction depends on besides the checkpoints and the input (stored in every .npz)."""
    return {"seed": args.seed, "sampler": args.sampler, "num_samples": args.num_samples,
            "batch_size": args.batch_size, "device": args.device, "num_threads": torch.get_num_threads(),
            "num_given_frames": spec.num_given_frames, "num_frames": args.num_frames,
            "window_starts": window_starts(args.num_frames, spec.num_frames, spec.num_given_frames),
            "temperature": options.temperature, "top_k": options.top_k, "top_p": options.top_p}


def predict_and_write(models: PredictionModels, items: list[LoadedInput], spec: InputSpec, args, meta: dict) -> dict:
    """Predict every input and write its files as soon as its samples are done → {name: {source, files}}."""
    outputs, starts = {}, window_starts(meta["num_frames"], spec.num_frames, spec.num_given_frames)
    for index, result in predict_inputs(models, items, spec, args):
        item = items[index]
        codes = {key: result[key].numpy() for key in RESULT_KEYS if key != "videos"}
        item_meta = {**meta, "source": item.source, "start_frame": item.start_frame,
                     "frame_stride": item.frame_stride, "ground_truth_frames": int(item.clip.shape[1])}
        paths = write_prediction(Path(args.out), item, result["videos"], codes, spec, starts, args.fps or item.fps,
                                 item_meta)
        outputs[item.name] = {"source": item.source, "files": [str(path) for path in paths]}
    return outputs


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.num_threads > 0:
        torch.set_num_threads(args.num_threads)
    try:  # everything a user can get wrong fails here, with one message, before any sampling
        options = SamplingOptions(args.temperature, args.top_k, args.top_p)
        if args.num_samples < 1 or args.batch_size < 1:
            raise ValueError(f"--num_samples and --batch_size must be >= 1, got {args.num_samples}, {args.batch_size}")
        spec = input_spec(args.vqvae, args.top)
        args.num_frames = args.num_frames or spec.num_frames
        window_starts(args.num_frames, spec.num_frames, spec.num_given_frames)  # refuses too few frames
        models = load_prediction_models(args.vqvae, args.top, args.bottom, torch.device(args.device))
        sources = resolve_inputs(args.input, args.start_frame, spec)
    except (CheckpointError, SourceError, FileNotFoundError, ValueError) as error:
        print(f"vqvideo predict: {error}", file=sys.stderr)
        return 2
    items, skipped = load_inputs(sources, spec, args.num_frames)
    for path, reason in skipped:
        print(f"vqvideo predict: skipping {path}: {reason}", file=sys.stderr)
    for item in items:
        if item.clip.shape[1] < args.num_frames:
            print(f"vqvideo predict: {item.source} has {item.clip.shape[1]} of the {args.num_frames} frames from "
                  f"frame {item.start_frame} at stride {item.frame_stride}: its ground truth is shown for those only "
                  "(lower --start_frame or --num_frames for more)", file=sys.stderr)
    if not items:
        print(f"vqvideo predict: none of the {len(sources)} input(s) could be predicted", file=sys.stderr)
        return 1
    meta = run_meta(args, spec, options)
    try:
        with explain_disk_full(args.out, output_bytes(items, spec, args.num_samples), "the predictions"):
            outputs = predict_and_write(models, items, spec, args, meta)
            atomic_write_json(Path(args.out) / SUMMARY_NAME, {**meta, "predicted": outputs, "skipped": dict(skipped)})
    except DiskFullError as error:
        print(f"vqvideo predict: {error}", file=sys.stderr)
        return 2
    print(f"vqvideo predict: {len(items)} input(s) predicted, {len(skipped)} skipped → {args.out}/")
    for entry in outputs.values():
        print("  " + "  ".join(path for path in entry["files"] if not path.endswith(".npz")))
    return 0
