"""`vqvideo predict --vqvae CKPT --top CKPT --bottom CKPT --input PATH --out DIR`: 4 given frames → 16 frames.

For each input video the clip is read from its start (or `--start_frame`) exactly as in training (shorter side
resized to the VQ-VAE's resolution, center crop; clip length, stride and resolution come from the VQ-VAE
checkpoint), K futures are sampled (vqvideo/sampling/pipeline.py) and written as `<name>.mp4` and `<name>.gif`
laid out [ground truth | sample 1 | ... | sample K] (vqvideo/sampling/panels.py), plus the codes `<name>.npz`.
`--input embedded:val` predicts the held-out end of each bundled clip (never trained on).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from vqvideo.files import atomic_write, atomic_write_json
from vqvideo.data.sources import SourceError
from vqvideo.lit.checkpoints import CheckpointError, read_checkpoint
from vqvideo.sampling import DEFAULT_SAMPLER, SAMPLER_NAMES, SamplingOptions, get_sampler
from vqvideo.sampling.inputs import ClipSpec, LoadedInput, load_inputs, resolve_inputs
from vqvideo.sampling.panels import prediction_panel
from vqvideo.sampling.pipeline import PredictionModels, predict_video

SUMMARY_NAME = "summary.json"  # written last: its presence means the run finished
DISPLAY_SIZE = 128  # panels smaller than this are upscaled (nearest) so codes stay visible in the GIF


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vqvideo predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("--vqvae", required=True, help="VQ-VAE checkpoint (e.g. outputs/demo/vqvae.ckpt)")
    parser.add_argument("--top", required=True, help="top prior checkpoint")
    parser.add_argument("--bottom", required=True, help="bottom prior checkpoint")
    parser.add_argument("--input", required=True,
                        help="a video file, a folder of videos, or 'embedded:val' (held-out end of the bundled clips)")
    parser.add_argument("--out", required=True, help="output folder for <name>.mp4/.gif/.npz")
    parser.add_argument("--num_samples", type=int, default=3, help="futures sampled per input (K)")
    parser.add_argument("--seed", type=int, default=0, help="same seed and arguments → same videos")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top_k", type=int, default=None, help="sample among the k most likely codes")
    parser.add_argument("--top_p", type=float, default=None, help="nucleus sampling mass")
    parser.add_argument("--batch_size", type=int, default=16, help="(input, sample) pairs sampled together")
    parser.add_argument("--start_frame", type=int, default=0,
                        help="first given frame (for embedded:val: counted from the start of the held-out part)")
    parser.add_argument("--sampler", choices=SAMPLER_NAMES, default=DEFAULT_SAMPLER)
    parser.add_argument("--fps", type=float, default=None, help="output frame rate (default: the source's)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--num_threads", type=int, default=1,
                        help="CPU threads for torch (sampling runs many tiny ops: 1 is fastest, and ~20x faster than "
                             "2 on a busy CPU; codes depend on it, since float sums change with the thread count)")
    return parser


def load_models(args: argparse.Namespace, device: torch.device) -> PredictionModels:
    from vqvideo.lit.bottom_prior_module import load_bottom_prior
    from vqvideo.lit.top_prior_module import load_top_prior
    from vqvideo.lit.vqvae_module import load_vqvae

    models = PredictionModels(load_vqvae(args.vqvae), load_top_prior(args.top), load_bottom_prior(args.bottom))
    return PredictionModels(*(model.to(device).eval() for model in models))


def check_latent_shapes(spec: ClipSpec, vqvae: torch.nn.Module, prior_paths: list[str]) -> None:
    """The priors must have been trained on the latent shapes this VQ-VAE gives for the spec's clips."""
    top_shape, bottom_shape = vqvae.latent_shapes(spec.num_frames, spec.resolution, spec.resolution)
    expected = {"top_shape": list(top_shape), "bottom_shape": list(bottom_shape)}
    for path in prior_paths:
        hparams = read_checkpoint(path).get("hyper_parameters") or {}
        for key, shape in expected.items():
            if key in hparams and list(hparams[key]) != shape:
                raise CheckpointError(
                    f"{path} was trained on {key} {list(hparams[key])}, but the VQ-VAE gives {shape} for "
                    f"{spec.num_frames}x{spec.resolution}x{spec.resolution} clips: pass the priors trained on this "
                    "VQ-VAE's code cache"
                )


def write_prediction(out_dir: Path, item: LoadedInput, videos: torch.Tensor, codes: dict, spec: ClipSpec,
                     fps: float, meta: dict) -> list[Path]:
    """videos: (K, 3, T, H, W) float in [-1, 1]; codes: arrays keyed top/bottom (K, ...) and given_top/given_bottom.
    Writes <name>.mp4, <name>.gif and <name>.npz (all atomic); returns their paths."""
    from vqvideo.video_io import video_to_uint8, write_gif, write_mp4

    truth = video_to_uint8(item.clip)  # (Tr, H, W, 3)
    samples = video_to_uint8(videos)  # (K, T, H, W, 3)
    scale = max(1, DISPLAY_SIZE // spec.resolution)
    panel = prediction_panel(truth, samples, spec.num_given_frames, scale=scale)
    paths = [write_mp4(out_dir / f"{item.name}.mp4", panel, fps), write_gif(out_dir / f"{item.name}.gif", panel, fps)]
    arrays = {key: value.astype(np.uint16) for key, value in codes.items()}  # codes < 65536: uint16 on disk
    arrays["meta"] = np.array(json.dumps(meta))
    paths.append(save_npz_atomic(out_dir / f"{item.name}.npz", arrays))
    return paths


def save_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """np.savez through a temporary file, then rename: never a truncated .npz."""

    def write(temp: Path) -> None:
        with open(temp, "wb") as handle:
            np.savez(handle, **arrays)

    return atomic_write(path, write)


def predict_inputs(models: PredictionModels, items: list[LoadedInput], spec: ClipSpec,
                   args) -> Iterator[tuple[int, dict]]:
    """Sample args.num_samples futures for every input, batch by batch (the generator runs through the batches
    in order, so the same seed, inputs and batch size give the same videos). Yields per-input results."""
    sampler = get_sampler(args.sampler, progress=True)  # naive: a bar over positions
    options = SamplingOptions(args.temperature, args.top_k, args.top_p)
    generator = torch.Generator().manual_seed(args.seed)
    tasks = [(index, sample) for index in range(len(items)) for sample in range(args.num_samples)]
    results: dict[int, dict] = {index: {"videos": [], "top": [], "bottom": []} for index in range(len(items))}
    with tqdm(total=len(tasks), desc="sampling", unit="video") as bar:
        for begin in range(0, len(tasks), args.batch_size):
            batch = tasks[begin:begin + args.batch_size]
            clips = torch.stack([items[index].clip[:, :spec.num_given_frames] for index, _ in batch])
            prediction = predict_video(models, clips, spec.num_frames, sampler, options, generator,
                                       spec.num_given_frames)
            for row, (index, _) in enumerate(batch):
                result = results[index]
                result["videos"].append(prediction.video[row].cpu())
                result["top"].append(prediction.codes.top[row].cpu().numpy())
                result["bottom"].append(prediction.codes.bottom[row].cpu().numpy())
                result["given_top"] = prediction.given_codes.top[row].cpu().numpy()
                result["given_bottom"] = prediction.given_codes.bottom[row].cpu().numpy()
                if len(result["videos"]) == args.num_samples:
                    yield index, result
                    results[index] = {}
            bar.update(len(batch))


def run_meta(args: argparse.Namespace, spec: ClipSpec, options: SamplingOptions) -> dict:
    """What a prediction depends on besides the checkpoints and the input (stored in every .npz)."""
    return {"seed": args.seed, "sampler": args.sampler, "num_samples": args.num_samples,
            "batch_size": args.batch_size, "device": args.device, "num_threads": torch.get_num_threads(),
            "num_given_frames": spec.num_given_frames, "temperature": options.temperature,
            "top_k": options.top_k, "top_p": options.top_p}


def predict_and_write(models: PredictionModels, items: list[LoadedInput], spec: ClipSpec, args, meta: dict) -> dict:
    """Predict every input and write its files as soon as its samples are done → {name: {source, files}}."""
    outputs = {}
    for index, result in predict_inputs(models, items, spec, args):
        item = items[index]
        codes = {"top": np.stack(result["top"]), "bottom": np.stack(result["bottom"]),
                 "given_top": result["given_top"], "given_bottom": result["given_bottom"]}
        item_meta = {**meta, "source": item.source, "start_frame": item.start_frame,
                     "frame_stride": item.frame_stride, "ground_truth_frames": int(item.clip.shape[1])}
        paths = write_prediction(Path(args.out), item, torch.stack(result["videos"]), codes, spec,
                                 args.fps or item.fps, item_meta)
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
        get_sampler(args.sampler)
        spec = ClipSpec.from_checkpoints(args.vqvae, args.bottom)
        models = load_models(args, torch.device(args.device))
        check_latent_shapes(spec, models.vqvae, [args.top, args.bottom])
        sources = resolve_inputs(args.input, args.start_frame, spec)
    except (CheckpointError, SourceError, FileNotFoundError, ValueError) as error:
        print(f"vqvideo predict: {error}", file=sys.stderr)
        return 2
    items, skipped = load_inputs(sources, spec)
    for path, reason in skipped:
        print(f"vqvideo predict: skipping {path}: {reason}", file=sys.stderr)
    if not items:
        print(f"vqvideo predict: none of the {len(sources)} input(s) could be predicted", file=sys.stderr)
        return 1
    meta = run_meta(args, spec, options)
    outputs = predict_and_write(models, items, spec, args, meta)
    summary = {**meta, "predicted": outputs, "skipped": dict(skipped)}
    atomic_write_json(Path(args.out) / SUMMARY_NAME, summary)
    print(f"vqvideo predict: {len(items)} input(s) predicted, {len(skipped)} skipped → {args.out}/")
    for entry in outputs.values():
        print("  " + "  ".join(path for path in entry["files"] if not path.endswith(".npz")))
    return 0
