"""Can the priors learn motion at all? A code world with a known answer, trained with the demo's prior configs.

The sprites demo's samples barely beat copy-last, and from the pixels one cannot tell whether the priors cannot learn
motion or whether the VQ-VAE's codes do not move with the picture. This benchmark takes the VQ-VAE out: it writes
a code cache (the real format, the demo VQ-VAE's code shapes and codebook sizes) whose codes *are* a world of
moving objects, trains both priors on it with `vqvideo fit` and the demo's YAMLs, samples them with the real
sampler, and prints how many future codes come out right. The future is fixed by the given codes, so a prior
that learns motion gets (almost) all of them; copying the given slice gets only the still background.

The world, per clip: a background code; 1-3 objects, each one bottom cell of one of 12 colours, moving one bottom
cell per bottom slice in one of the 8 directions and bouncing off the borders. Bottom code of a cell: the colour
of the last object on it, else the background. Top code of a top cell at top slice s: the colour and the place
within the cell (one of 4) of the last object on it at the slice's first bottom slice, else the background. The
given codes are the first top slice and the first two bottom slices (the positions and the velocities); the causal
VQ-VAE's given frames encoded alone equal these slices, so the cache's given arrays are them.

    python benchmarks/code_motion.py --out outputs/code_motion                      # the demo's prior budgets
    python benchmarks/code_motion.py --out outputs/code_motion_long --top_steps 3000 --bottom_steps 3000

It prints, per future slice: teacher-forced bits/code with the own and with displaced given codes, and the share
of codes right (all / at the cells where the truth has an object) for copy-the-given-slice, the prior's samples
(temperature 1) and its greedy codes; bottom codes sampled from the true top codes and from sampled ones.
Exact answer: 0 bits, 100% right (up to objects hidden behind another in the given slices). Two more figures say
why a prior falls short:
- the lookup calibration: how many steps the simplest learner (an embedding and a 2-layer MLP, at the bottom
  prior's batch size and learning rate) needs to read an even bottom slice's objects off the top codes, which the
  bottom prior must do given the true top codes;
- the motion calibration: how many steps the simplest learner of the top prior's task (a plain 4-layer CNN from
  the given codes to every future top slice, at the top prior's batch size and learning rate) needs to place the
  moving objects at all: the steps a top prior needs at the least;
- the conditioning's term in the gated layers' pre-activations (mean |x|, share beyond 3): a term that large
  leaves tanh and sigmoid flat, and the conditioning stack gets almost no gradient.
`--eval_only` scores the priors already in --out again (and keeps the recorded training seconds).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from vqvideo.cache.dataset import CodesDataModule
from vqvideo.cache.manifest import CacheIdentity, ClipRecord, CodeSpec, code_spec_of
from vqvideo.cache.shards import RankShardWriter, codes_to_uint16
from vqvideo.cache.writer import merge_manifest, wipe_cache
from vqvideo.commands.demo import config_for
from vqvideo.evaluation.diagnostics import slice_bits
from vqvideo.lit.bottom_prior_module import load_bottom_prior
from vqvideo.lit.configs import read_yaml, vqvae_and_batch
from vqvideo.lit.top_prior_module import load_top_prior
from vqvideo.models.vqvae import Codes
from vqvideo.sampling import get_sampler
from vqvideo.sampling.base import SamplingOptions

NUM_BACKGROUNDS, NUM_COLOURS = 4, 12
DIRECTIONS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def reflect(position: np.ndarray, size: int) -> np.ndarray:
    """Unfolded positions (int) → positions bouncing between 0 and size - 1."""
    period = 2 * (size - 1)
    folded = np.mod(position, period)
    return np.where(folded > size - 1, period - folded, folded)


def world(rng: np.random.Generator, spec: CodeSpec) -> tuple[np.ndarray, np.ndarray]:
    """One clip: top (Tt, Ht, Wt) and bottom (Tb, Hb, Wb) int64 codes of a few objects moving and bouncing."""
    tb, hb, wb = spec.bottom_shape
    st, sy, sx = spec.top_to_bottom_stride
    background = int(rng.integers(NUM_BACKGROUNDS))
    bottom = np.full((tb, hb, wb), background, dtype=np.int64)
    top = np.full(spec.top_shape, background, dtype=np.int64)
    for _ in range(int(rng.integers(1, 4))):
        colour = int(rng.integers(NUM_COLOURS))
        start = np.array([rng.integers(hb), rng.integers(wb)])
        velocity = np.array(DIRECTIONS[int(rng.integers(len(DIRECTIONS)))])
        for n in range(tb):
            y, x = reflect(start[0] + n * velocity[0], hb), reflect(start[1] + n * velocity[1], wb)
            bottom[n, y, x] = NUM_BACKGROUNDS + colour
            if n % st == 0:
                top[n // st, y // sy, x // sx] = NUM_BACKGROUNDS + colour * sy * sx + (y % sy) * sx + x % sx
    return top, bottom


def write_cache(cache_dir: Path, spec: CodeSpec, num_clips: int, val_fraction: float, seed: int) -> None:
    """The code world as a complete code cache (manifest, shards) in the real format."""
    wipe_cache(cache_dir)
    num_given_top, num_given_bottom = spec.given_top_shape[0], spec.given_bottom_shape[0]
    writer, clips = RankShardWriter(cache_dir, rank=0, rows_per_shard=512), []
    rng = np.random.default_rng(seed)
    for clip_id in range(num_clips):
        top, bottom = world(rng, spec)
        split = "val" if clip_id >= num_clips * (1 - val_fraction) else "train"
        clips.append(ClipRecord(clip_id, f"code-world/{clip_id}", f"{clip_id}", 0, 0, 1, False, None, split))
        writer.add({"top": codes_to_uint16(top[None], "top"), "bottom": codes_to_uint16(bottom[None], "bottom"),
                    "given_top": codes_to_uint16(top[None, :num_given_top], "given top"),
                    "given_bottom": codes_to_uint16(bottom[None, :num_given_bottom], "given bottom"),
                    "clip_id": np.array([clip_id], dtype=np.int64)})
    writer.flush()
    identity = CacheIdentity("none: synthetic code world", "synthetic", {}, "synthetic",
                             {"seed": seed, "num_clips": num_clips}, f"code-world-{seed}-{num_clips}")
    merge_manifest(cache_dir, identity, spec, clips)


def prior_config(stage: str, out: Path, steps: int | None) -> Path:
    """The demo's prior YAML with its paths moved to `out` and without the VideoLogger (no VQ-VAE decodes here).
    With `steps`: exactly that many steps, the cosine over all of them, no early stop and no time cap, validated
    20 times (the best validation checkpoint is kept, as in the demo)."""
    path = config_for(stage, out)
    settings = yaml.safe_load(path.read_text())
    dropped = ("VideoLogger",) + (("EarlyStopping",) if steps is not None else ())
    callbacks = settings["trainer"]["callbacks"]
    settings["trainer"]["callbacks"] = [c for c in callbacks if not c["class_path"].endswith(dropped)]
    if steps is not None:
        interval = max(settings["trainer"]["val_check_interval"], steps // 20)
        settings["trainer"].update(max_steps=steps, max_time=None, val_check_interval=interval)
        settings["model"]["init_args"]["optimization"]["lr_total_steps"] = None
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path


def train(stage: str, out: Path, steps: int | None, overrides: str = "") -> float:
    """Seconds `vqvideo fit` took for the stage; `overrides`: more fit arguments, shell-quoted."""
    command = [sys.executable, "-m", "vqvideo.cli", "fit", "--config", str(prior_config(stage, out, steps)),
               "--trainer.enable_progress_bar=false", *shlex.split(overrides)]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def read_split(cache_dir: Path, split: str) -> tuple[Codes, Codes]:
    """(whole-clip codes, given codes) of one split, int64, read as the priors' data module reads them."""
    data = CodesDataModule(str(cache_dir), target="bottom", batch_size=1, num_workers=0, in_memory=True)
    data.setup("fit")
    dataset = data.datasets[split]
    rows = dataset.gather(np.arange(len(dataset)))
    return Codes(rows["top"], rows["bottom"]), Codes(rows["given_top"], rows["given_bottom"])


def shares(predicted: torch.Tensor, truth: torch.Tensor) -> tuple[list, list]:
    """predicted, truth (B, T, H, W) int64 → per slice: the share of codes right over all cells, and over the cells
    where the truth has an object (code >= NUM_BACKGROUNDS): the codes that motion moves."""
    right = predicted == truth
    objects = truth >= NUM_BACKGROUNDS
    overall = right.double().mean(dim=(0, 2, 3))
    on_objects = (right & objects).sum(dim=(0, 2, 3)).double() / objects.sum(dim=(0, 2, 3)).clamp(min=1)
    return [round(float(v), 3) for v in overall], [round(float(v), 3) for v in on_objects]


def conditioning_in_gates(pixelcnn: torch.nn.Module, run) -> dict:
    """What the conditioning adds to the gated layers' pre-activations (tanh and sigmoid) while `run()` does one
    forward pass: mean |value| and the share beyond 3, where both gates are flat and pass almost no gradient back
    to the conditioning stack."""
    values = []
    hooks = [projection.register_forward_hook(lambda module, args, output: values.append(output.detach().abs()))
             for layer in pixelcnn.layers for projection in (layer.vertical_cond, layer.horizontal_cond)]
    try:
        with torch.no_grad():
            run()
    finally:
        for hook in hooks:
            hook.remove()
    flat = torch.cat([value.flatten() for value in values])
    return {"mean_abs": round(float(flat.mean()), 2), "share_beyond_3": round(float((flat > 3).double().mean()), 3)}


def evaluate(out: Path, sampler_name: str, seed: int) -> dict:
    codes, given = read_split(out / "codes", "val")
    top_prior, bottom_prior = load_top_prior(str(out / "top_prior.ckpt")), load_bottom_prior(str(out / "bottom_prior.ckpt"))
    num_top, num_bottom = given.top.shape[1], given.bottom.shape[1]
    future_top, future_bottom = codes.top[:, num_top:], codes.bottom[:, num_bottom:]
    bits = slice_bits(top_prior, bottom_prior, codes, given)
    result = {"clips": len(codes.top),
              "bits": {name: [round(float(v), 3) for v in value.mean(dim=0)] for name, value in bits.items()}}
    some = slice(0, 50)
    slice_index = torch.full((50,), num_bottom, dtype=torch.long)
    result["conditioning_in_gates"] = {
        "top": conditioning_in_gates(top_prior.pixelcnn, lambda: top_prior(future_top[some], given.top[some],
                                                                             given.bottom[some])),
        "bottom": conditioning_in_gates(bottom_prior.pixelcnn, lambda: bottom_prior(codes.bottom[some],
                                                                                    codes.top[some], slice_index))}
    sampler = get_sampler(sampler_name)
    top_copy = given.top[:, -1:].expand_as(future_top)
    result["top"] = {"copy": shares(top_copy, future_top)}
    bottom_copy = given.bottom[:, -1:].expand_as(future_bottom)
    result["bottom"] = {"copy": shares(bottom_copy, future_bottom)}
    for name, options in (("sampled", SamplingOptions()), ("greedy", SamplingOptions(top_k=1))):
        generator = torch.Generator().manual_seed(seed)
        top = sampler.sample_top(top_prior, given.top, given.bottom, future_top.shape[1], options, generator)
        result["top"][name] = shares(top, future_top)
        for top_name, top_codes in (("true top", codes.top), ("sampled top", torch.cat([given.top, top], dim=1))):
            bottom = sampler.sample_bottom(bottom_prior, top_codes, given.bottom, future_bottom.shape[1], options,
                                           generator)[:, num_bottom:]
            result["bottom"][f"{name}, {top_name}"] = shares(bottom, future_bottom)
    return result


class Lookup(torch.nn.Module):
    """The simplest learner of the codes of an even bottom slice: a bottom cell reads the code of its top cell at
    the same time (which names the object there and its place in the cell) and its own place in the cell."""

    def __init__(self, spec: CodeSpec, width: int = 64) -> None:
        super().__init__()
        self.stride = spec.top_to_bottom_stride
        self.places = self.stride[1] * self.stride[2]
        self.embedding = torch.nn.Embedding(spec.num_top_codes, width)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(width + self.places, 2 * width), torch.nn.ReLU(),
                                       torch.nn.Linear(2 * width, spec.num_bottom_codes))

    def forward(self, top: torch.Tensor, slice_index: torch.Tensor) -> torch.Tensor:
        """top (B, Tt, Ht, Wt) int64, slice_index (B,) int64 → logits (B, Hb, Wb, num_bottom_codes)."""
        st, sy, sx = self.stride
        parent = top[torch.arange(len(slice_index)), slice_index // st]  # (B, Ht, Wt)
        features = self.embedding(parent).repeat_interleave(sy, 1).repeat_interleave(sx, 2)  # (B, Hb, Wb, C)
        rows, cols = torch.meshgrid(torch.arange(features.shape[1]), torch.arange(features.shape[2]), indexing="ij")
        place = torch.nn.functional.one_hot((rows % sy) * sx + cols % sx, self.places).float()
        return self.mlp(torch.cat([features, place.expand(len(parent), -1, -1, -1)], dim=-1))


def lookup_calibration(out: Path, spec: CodeSpec, steps: int, batch_size: int, learning_rate: float) -> list[tuple[int, float]]:
    """How many steps the simplest learner (`Lookup`, AdamW at the bottom prior's batch size and learning rate)
    needs for the objects of the even bottom slices: (step, share of held-out object cells right) every 10%."""
    torch.manual_seed(0)
    (train, _), (val, _) = read_split(out / "codes", "train"), read_split(out / "codes", "val")
    model = Lookup(spec)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    even = torch.arange(spec.given_bottom_shape[0], spec.bottom_shape[0], spec.top_to_bottom_stride[0])
    val_slice = torch.full((len(val.top),), int(even[0]))
    truth = val.bottom[:, int(even[0])]
    progress = []
    for step in range(1, steps + 1):
        rows = torch.randint(len(train.top), (batch_size,))
        slice_index = even[torch.randint(len(even), (batch_size,))]
        target = train.bottom[rows, slice_index]  # (B, Hb, Wb)
        loss = torch.nn.functional.cross_entropy(model(train.top[rows], slice_index).movedim(-1, 1), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % max(1, steps // 10) == 0:
            with torch.no_grad():
                predicted = model(val.top, val_slice).argmax(-1)
            objects = truth >= NUM_BACKGROUNDS
            progress.append((step, round(float((predicted == truth)[objects].float().mean()), 3)))
    return progress


class Motion(torch.nn.Module):
    """The simplest learner of the top prior's task: a plain CNN (no autoregression) from the given codes (the
    top slice upsampled to the bottom grid beside the bottom slices, at full bottom resolution, where a move of one
    cell is one cell) to the logits of every future top slice at once. An object's future place needs its colour at
    two given slices and the step between them: a conjunction the network must find, unlike the lookup."""

    def __init__(self, spec: CodeSpec, width: int = 64, depth: int = 4, embed_dim: int = 16) -> None:
        super().__init__()
        self.stride = spec.top_to_bottom_stride
        self.num_future = spec.top_shape[0] - spec.given_top_shape[0]
        self.num_codes = spec.num_top_codes
        self.top_embedding = torch.nn.Embedding(spec.num_top_codes, embed_dim)
        self.bottom_embedding = torch.nn.Embedding(spec.num_bottom_codes, embed_dim)
        channels = embed_dim * (spec.given_top_shape[0] + spec.given_bottom_shape[0])
        layers = []
        for index in range(depth):
            layers += [torch.nn.Conv2d(channels if index == 0 else width, width, 3, padding=1), torch.nn.ReLU()]
        _, sy, sx = self.stride
        layers += [torch.nn.Conv2d(width, width, (sy, sx), stride=(sy, sx)), torch.nn.ReLU(),
                   torch.nn.Conv2d(width, self.num_future * spec.num_top_codes, 1)]
        self.net = torch.nn.Sequential(*layers)

    def forward(self, given_top: torch.Tensor, given_bottom: torch.Tensor) -> torch.Tensor:
        """given_top (B, Tg, Ht, Wt), given_bottom (B, Tgb, Hb, Wb) int64 → logits (B, K, Tp, Ht, Wt)."""
        _, sy, sx = self.stride
        top = self.top_embedding(given_top).repeat_interleave(sy, 2).repeat_interleave(sx, 3)  # (B, Tg, Hb, Wb, E)
        features = torch.cat([top, self.bottom_embedding(given_bottom)], dim=1)  # (B, Tg + Tgb, Hb, Wb, E)
        logits = self.net(features.permute(0, 1, 4, 2, 3).flatten(1, 2))  # (B, Tp·K, Ht, Wt)
        return logits.unflatten(1, (self.num_future, self.num_codes)).transpose(1, 2)


def motion_calibration(out: Path, spec: CodeSpec, steps: int, batch_size: int, learning_rate: float) -> list:
    """How many steps `Motion` (AdamW at the top prior's batch size and learning rate) needs for the objects of the
    future top slices: (step, share of held-out object cells right per future slice) every 10%."""
    torch.manual_seed(0)
    (train, train_given), (val, val_given) = read_split(out / "codes", "train"), read_split(out / "codes", "val")
    num_given = spec.given_top_shape[0]
    model = Motion(spec)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    progress = []
    for step in range(1, steps + 1):
        rows = torch.randint(len(train.top), (batch_size,))
        logits = model(train_given.top[rows], train_given.bottom[rows])
        loss = torch.nn.functional.cross_entropy(logits, train.top[rows, num_given:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % max(1, steps // 10) == 0:
            with torch.no_grad():
                predicted = model(val_given.top, val_given.bottom).argmax(1)
            progress.append((step, shares(predicted, val.top[:, num_given:])[1]))
    return progress


def demo_batch_and_learning_rate(stage: str) -> tuple[int, float]:
    """The demo YAML's batch size and learning rate for `stage` ("top_prior" or "bottom_prior"): a calibration
    learner runs at the prior's own."""
    config = read_yaml(config_for(stage, Path("outputs/demo")))
    return config["data"]["init_args"]["batch_size"], config["model"]["init_args"]["optimization"]["learning_rate"]


def print_result(result: dict, timings: dict) -> None:
    print(f"\ncode world, {result['clips']} held-out clips; training seconds: {timings}")
    if "lookup" in result:
        lookup = result["lookup"]
        print(f"\nlookup calibration (batch {lookup['batch_size']}, lr {lookup['learning_rate']}): the top code says "
              f"which bottom code each of its cells has; (step, share of object cells right): "
              f"{lookup['object_cells_right']}")
    if "motion" in result:
        motion = result["motion"]
        print(f"\nmotion calibration (batch {motion['batch_size']}, lr {motion['learning_rate']}): a plain CNN from the "
              f"given codes to every future top slice; (step, share of object cells right per future slice): "
              f"{motion['object_cells_right']}")
    for level in ("top", "bottom"):
        own, displaced = result["bits"][level], result["bits"][f"{level}_swapped"]
        print(f"\n{level} prior, per future slice")
        print(f"  bits/code, own given codes       {own}")
        print(f"  bits/code, displaced given codes {displaced}")
        gates = result["conditioning_in_gates"][level]
        print(f"  conditioning's term in the gates: mean |x| {gates['mean_abs']}, beyond |3| {gates['share_beyond_3']}")
        print("  share of codes right: all cells / the cells where the truth has an object")
        for name, (overall, on_objects) in result[level].items():
            print(f"  {name:<24} {overall}  /  {on_objects}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("outputs/code_motion"))
    parser.add_argument("--num_clips", type=int, default=3000)
    parser.add_argument("--val_fraction", type=float, default=0.1)
    parser.add_argument("--top_steps", type=int, default=None, help="default: the demo YAML's budget; N: N steps (cosine over all, no early stop)")
    parser.add_argument("--bottom_steps", type=int, default=None, help="as --top_steps")
    parser.add_argument("--top_args", default="", help="more `vqvideo fit` overrides for the top prior, after an = "
                        "sign: --top_args='--model.init_args.optimization.learning_rate=1e-3'")
    parser.add_argument("--bottom_args", default="", help="the same for the bottom prior")
    parser.add_argument("--sampler", default="cached")
    parser.add_argument("--lookup_steps", type=int, default=2000, help="steps of the lookup calibration (0: none)")
    parser.add_argument("--motion_steps", type=int, default=3000, help="steps of the motion calibration (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval_only", action="store_true", help="score the priors already in --out")
    args = parser.parse_args(argv)
    vqvae, batch = vqvae_and_batch(config_for("vqvae", Path("outputs/demo")))
    num_given_frames = read_yaml(config_for("precompute", Path("outputs/demo")))["num_given_frames"]
    spec = code_spec_of(vqvae, tuple(batch.shape[2:]), num_given_frames)
    previous = args.out / "code_motion.json"
    timings = json.loads(previous.read_text()).get("timings_s", {}) if args.eval_only and previous.is_file() else {}
    if not args.eval_only:
        write_cache(args.out / "codes", spec, args.num_clips, args.val_fraction, args.seed)
        timings = {"top_prior": round(train("top_prior", args.out, args.top_steps, args.top_args)),
                   "bottom_prior": round(train("bottom_prior", args.out, args.bottom_steps, args.bottom_args))}
    result = evaluate(args.out, args.sampler, args.seed)
    result["timings_s"] = timings
    for name, stage, steps, calibrate in (("lookup", "bottom_prior", args.lookup_steps, lookup_calibration),
                                          ("motion", "top_prior", args.motion_steps, motion_calibration)):
        if steps:
            batch_size, learning_rate = demo_batch_and_learning_rate(stage)
            result[name] = {"batch_size": batch_size, "learning_rate": learning_rate,
                            "object_cells_right": calibrate(args.out, spec, steps, batch_size, learning_rate)}
    (args.out / "code_motion.json").write_text(json.dumps(result, indent=1))
    print_result(result, timings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
