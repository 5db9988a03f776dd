"""The three frozen stages (and an optional I3D) as a prediction-loop module for `vqvideo eval`.

`predict_step` takes a batch of ground-truth clips and returns, per clip: K sampled futures (rollouts when the eval
asks for more frames than the VQ-VAE's clip length), the VQ-VAE's reconstruction, its top-only decoding, the codes,
the priors' teacher-forced bits on the clip's own codes, and I3D features. No collectives run inside `predict_step`
(under DDP Lightning hands each rank a disjoint, unpadded part of the clips).

Reproducibility: each (clip, sample) draws from its own generator, `task_generator(seed, clip_key(name), sample)`,
and every batch is computed at exactly `batch_size` clips (a short batch is padded with copies of its last clip,
then cut), as the code cache encoder does: kernels are chosen by batch size and round differently, so a clip's
numbers must not depend on how a run — its restart, or another device count — happened to batch it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_lightning import LightningModule
from torch import nn

from vqvideo.evaluation.diagnostics import slice_bits
from vqvideo.evaluation.records import ClipOutput
from vqvideo.evaluation.summary import EvalSettings
from vqvideo.metrics.fvd import downscale, i3d_features
from vqvideo.models.vqvae import encode_given_frames
from vqvideo.sampling import get_sampler
from vqvideo.sampling.base import SamplingOptions, task_generator
from vqvideo.sampling.pipeline import PredictionModels, copied_codes_window, predict_video
from vqvideo.video_io import video_to_uint8


def chunk_starts(num_frames: int, clip_frames: int) -> list[int]:
    """Starts of the clip-length windows that cover `num_frames` frames: 0, Tc, 2 Tc, ... and, if the frames do not
    divide, a last window ending at the last frame (so every window is a whole clip, as the VQ-VAE was trained)."""
    starts = list(range(0, num_frames - clip_frames + 1, clip_frames))
    return starts if starts[-1] + clip_frames == num_frames else [*starts, num_frames - clip_frames]


@dataclass(frozen=True)
class EvalSampling:
    """How futures are sampled: options, sampler name (`vqvideo.sampling.SAMPLER_NAMES`), the seed of every
    (clip, sample) generator, and the fixed batch size every batch is computed at (see the module docstring)."""

    options: SamplingOptions
    sampler: str
    seed: int
    batch_size: int


def _numpy(value: Any) -> np.ndarray:
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)


@dataclass
class EvalBatch:
    """`EvalModule.predict_step`'s output for B clips (first dimension B everywhere, padding rows cut).

    truth, reconstruction: (B, N, H, W, 3) uint8; top_only, copied_codes: (B, Tc, H, W, 3) uint8 of the first window
    (the top level alone; the given codes' last slices repeated, `copied_codes_window`); samples: (B, K, N, H, W, 3)
    uint8; codes: top/bottom/given_top/given_bottom int64 (B, ...); sample_codes: the same keys (B, K, windows, ...);
    bits: top, top_count, bottom, bottom_count (B,) float64; features: '<px>.<system>.<window>' → (B, rows, 400)
    float32; seconds: sampling and features of the whole batch; clip_id: (B,) int64; read_error: B strings ("" if
    the clip was read); slice_bits: <level>, <level>_swapped (B, future slices) float64 (`diagnostics.slice_bits`)."""

    truth: np.ndarray
    reconstruction: np.ndarray
    top_only: np.ndarray
    copied_codes: np.ndarray
    samples: np.ndarray
    codes: dict[str, torch.Tensor]
    sample_codes: dict[str, torch.Tensor]
    bits: dict[str, torch.Tensor]
    features: dict[str, torch.Tensor]
    seconds: dict[str, float]
    clip_id: torch.Tensor
    read_error: list[str]
    slice_bits: dict[str, torch.Tensor]

    def clip_outputs(self) -> list[tuple[int, ClipOutput | str]]:
        """(clip id, its ClipOutput on the CPU, or its read error) per clip; each clip gets an equal share of the
        batch's seconds."""
        share = {name: value / len(self.read_error) for name, value in self.seconds.items()}
        outputs: list[tuple[int, ClipOutput | str]] = []
        for row, (clip_id, error) in enumerate(zip(self.clip_id.tolist(), self.read_error)):
            if error:
                outputs.append((clip_id, error))
                continue
            pick = lambda group: {name: _numpy(value)[row] for name, value in group.items()}  # noqa: E731
            outputs.append((clip_id, ClipOutput(
                truth=_numpy(self.truth)[row], reconstruction=_numpy(self.reconstruction)[row],
                top_only=_numpy(self.top_only)[row], copied_codes=_numpy(self.copied_codes)[row],
                samples=_numpy(self.samples)[row], codes=pick(self.codes),
                sample_codes=pick(self.sample_codes), features=pick(self.features), seconds=share,
                bits={name: float(value) for name, value in pick(self.bits).items()},
                slice_bits=pick(self.slice_bits))))
        return outputs


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class EvalModule(LightningModule):
    """Frozen VQ-VAE + priors (+ I3D) for `trainer.predict` over `FixedClipsDataModule` batches.

    settings: the eval's frames, samples and FVD setup (its resolutions: frame sizes the I3D sees the videos at, each
    `downscale`d first; its windows: first frames of the clip-length windows scored); sampling: how futures are
    drawn; clip_keys: the sampling key of each clip id (`vqvideo.evaluation.clips.clip_key`)."""

    def __init__(self, models: PredictionModels, settings: EvalSettings, sampling: EvalSampling, clip_keys: list[int],
                 i3d: nn.Module | None = None) -> None:
        super().__init__()
        self.vqvae, self.top_prior, self.bottom_prior = models.vqvae.freeze(), models.top_prior, models.bottom_prior
        for prior in (self.top_prior, self.bottom_prior):
            prior.eval().requires_grad_(False)
        self.i3d = i3d.eval().requires_grad_(False) if i3d is not None else None
        self.clip_keys, self.clip_frames, self.num_frames = clip_keys, settings.clip_frames, settings.num_frames
        self.num_given_frames, self.num_samples = settings.num_given_frames, settings.num_samples
        self.options, self.seed, self.batch_size = sampling.options, sampling.seed, sampling.batch_size
        self.sampler = get_sampler(sampling.sampler)
        fvd = settings.fvd
        self.fvd_protocol = fvd.protocol if fvd else None
        self.fvd_resolutions, self.fvd_windows = (fvd.resolutions, fvd.windows) if fvd else ((), (0,))

    @property
    def models(self) -> PredictionModels:
        return PredictionModels(self.vqvae, self.top_prior, self.bottom_prior)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> EvalBatch:
        """batch: clip_id (B,) int64, video (B, 3, N, H, W) float in [-1, 1], read_error: B strings."""
        video, num_clips = batch["video"], batch["video"].shape[0]
        if num_clips < self.batch_size:
            video = torch.cat([video, video[-1:].expand(self.batch_size - num_clips, *video.shape[1:])])
        keys = [self.clip_keys[clip_id] for clip_id in batch["clip_id"].tolist()]
        keys += [keys[-1]] * (self.batch_size - num_clips)
        started = time.perf_counter()
        prediction = self._sample(video, keys)
        _synchronize(video.device)
        sampling_seconds = time.perf_counter() - started
        truth_window = video[:, :, :self.clip_frames]
        codes, given = self.vqvae.encode(truth_window), encode_given_frames(self.vqvae, video, self.num_given_frames)
        outputs = {
            "truth": video_to_uint8(video), "reconstruction": video_to_uint8(self._reconstruct(video)),
            "top_only": video_to_uint8(self.vqvae.decode_top_only(codes.top).clamp(-1, 1)),
            "copied_codes": video_to_uint8(copied_codes_window(self.vqvae, given, codes.top.shape[1],
                                                               codes.bottom.shape[1])),
            "samples": self._samples_uint8(prediction.video),
            "codes": {"top": codes.top, "bottom": codes.bottom, "given_top": given.top, "given_bottom": given.bottom},
            "sample_codes": self._per_clip({"top": prediction.codes.top, "bottom": prediction.codes.bottom,
                                            "given_top": prediction.given_codes.top,
                                            "given_bottom": prediction.given_codes.bottom}),
            "bits": self._teacher_forced_bits(codes.top, codes.bottom, given.top, given.bottom),
            "slice_bits": slice_bits(self.top_prior, self.bottom_prior, codes, given),
        }
        started = time.perf_counter()
        outputs["features"] = self._features(outputs) if self.i3d is not None else {}
        outputs["seconds"] = {"sampling": sampling_seconds, "features": time.perf_counter() - started}
        outputs = self._cut(outputs, num_clips)
        return EvalBatch(**outputs, clip_id=batch["clip_id"], read_error=list(batch["read_error"]))

    # ----- sampling and reconstruction --------------------------------------------------------------------------
    def _sample(self, video: torch.Tensor, keys: list[int]):
        """K samples per clip, rows ordered clip by clip: row b * K + k is sample k of clip b."""
        given = video[:, :, :self.num_given_frames].repeat_interleave(self.num_samples, dim=0)
        generators = [task_generator(self.seed, key, sample) for key in keys for sample in range(self.num_samples)]
        return predict_video(self.models, given, self.clip_frames, self.sampler, self.options, generators,
                             self.num_given_frames, self.num_frames)

    def _samples_uint8(self, videos: torch.Tensor) -> Any:
        """(B * K, 3, N, H, W) float → (B, K, N, H, W, 3) uint8 NumPy."""
        frames = video_to_uint8(videos)
        return frames.reshape(self.batch_size, self.num_samples, *frames.shape[1:])

    def _per_clip(self, codes: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Sample rows (B * K, ...) → (B, K, ...)."""
        return {key: value.reshape(self.batch_size, self.num_samples, *value.shape[1:]) for key, value in codes.items()}

    @torch.no_grad()
    def _reconstruct(self, video: torch.Tensor) -> torch.Tensor:
        """(B, 3, N, H, W) → the VQ-VAE's reconstruction, clip-length window by window: (B, 3, N, H, W) in [-1, 1]."""
        parts, covered = [], 0
        for start in chunk_starts(video.shape[2], self.clip_frames):
            window = self.vqvae.reconstruct(video[:, :, start:start + self.clip_frames]).clamp(-1, 1)
            parts.append(window[:, :, covered - start:])
            covered = start + self.clip_frames
        return torch.cat(parts, dim=2)

    # ----- teacher-forced bits of the priors on the clip's own codes ---------------------------------------------
    @torch.no_grad()
    def _teacher_forced_bits(self, top: torch.Tensor, bottom: torch.Tensor, given_top: torch.Tensor,
                             given_bottom: torch.Tensor) -> dict[str, torch.Tensor]:
        """Bits each prior spends on the clip's future codes given everything before them (as in training): the
        top prior on the future top slices, the bottom prior on every future bottom slice. (B,) float64 sums and
        code counts."""
        num_given_top, num_given_bottom = given_top.shape[1], given_bottom.shape[1]
        target = top[:, num_given_top:]
        top_bits = self._bits(self.top_prior(target, given_top, given_bottom), target)
        bottom_bits = torch.zeros_like(top_bits)
        for slice_index in range(num_given_bottom, bottom.shape[1]):
            index = torch.full((bottom.shape[0],), slice_index, dtype=torch.long, device=bottom.device)
            bottom_bits += self._bits(self.bottom_prior(bottom, top, index), bottom[:, slice_index])
        count = lambda codes: torch.full_like(top_bits, codes[0].numel())  # noqa: E731
        return {"top": top_bits, "top_count": count(target), "bottom": bottom_bits,
                "bottom_count": count(bottom[:, num_given_bottom:])}

    @staticmethod
    def _bits(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """logits (B, K, ...), target (B, ...) int64 → (B,) float64 bits summed over positions."""
        nats = F.cross_entropy(logits.float(), target, reduction="none").double()
        return nats.flatten(1).sum(dim=1) / math.log(2)

    # ----- I3D features ------------------------------------------------------------------------------------------
    def _features(self, outputs: dict[str, Any]) -> dict[str, torch.Tensor]:
        """'<px>.<system>.<window>' → (B, rows, 400): rows 1 for truth and reconstruction, K for samples. Each call
        has a fixed size (batch_size rows per I3D batch), whatever clips the batch holds."""
        systems = {"truth": torch.as_tensor(outputs["truth"])[:, None],
                   "reconstruction": torch.as_tensor(outputs["reconstruction"])[:, None],
                   "sample": torch.as_tensor(outputs["samples"])}  # (B, rows, N, H, W, 3)
        features = {}
        for resolution in self.fvd_resolutions:
            for system, videos in systems.items():
                for start in self.fvd_windows:
                    window = videos[:, :, start:start + self.clip_frames].flatten(0, 1)
                    rows = i3d_features(self.i3d, downscale(window, resolution), self.fvd_protocol,
                                        batch_size=self.batch_size)
                    features[f"{resolution}.{system}.{start}"] = rows.reshape(videos.shape[0], videos.shape[1], -1)
        return features

    @staticmethod
    def _cut(outputs: dict[str, Any], num_clips: int) -> dict[str, Any]:
        """Drop the padding rows (first dimension) everywhere but `seconds`."""
        cut = {}
        for key, value in outputs.items():
            if key == "seconds":
                cut[key] = value
            elif isinstance(value, dict):
                cut[key] = {name: part[:num_clips] for name, part in value.items()}
            else:
                cut[key] = value[:num_clips]
        return cut
