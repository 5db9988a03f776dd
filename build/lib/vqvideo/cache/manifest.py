"""The code cache's manifest: what was encoded, by which VQ-VAE, and where each clip's codes live.

A cache directory holds:
  manifest.json              written last, by rank 0, once every rank has finished (this file = complete cache)
  run.json                   identity of the run (VQ-VAE checkpoint sha256 + config, clip plan): a restart
                             with other arguments is refused instead of silently mixing two caches
  progress/rank-<r>.json     shards each rank has completed, with checksums (what a restart trusts)
  shards/rank<r>-<seq>.<array>.npy   uint16 arrays, rows = clips: top, bottom, given_top, given_bottom, and
                             int64 clip_id (which clip each row holds)
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vqvideo.files import bytes_sha256, read_json

FORMAT_VERSION = 2  # 2: the given frames' arrays are named given_top / given_bottom
MANIFEST_NAME = "manifest.json"
MANIFEST_BYTES_PER_CLIP = 300  # one JSON line per clip (see Manifest.to_json_bytes)
RUN_NAME = "run.json"
PROGRESS_DIR = "progress"
SHARD_DIR = "shards"
# arrays of a shard, in the order their checksums are combined into the shard's sha256
CODE_ARRAYS = ("top", "bottom", "given_top", "given_bottom")
SHARD_ARRAYS = CODE_ARRAYS + ("clip_id",)


class CacheError(RuntimeError):
    """A cache directory is missing, incomplete, corrupted, or was built from other inputs."""


@dataclass(frozen=True)
class CodeSpec:
    """The latent facts of a cache: codebook sizes and code shapes per clip (no batch dimension). The priors'
    configs never re-type them: they reach the priors from here (`CodesDataModule.code_spec`, linked by the CLI).

    top_shape (Tt, Ht, Wt), bottom_shape (Tb, Hb, Wb): the whole clip's encoding.
    given_top_shape (Tg, Ht, Wt), given_bottom_shape (Tgb, Hb, Wb): the `num_given_frames` encoded alone.
    """

    num_top_codes: int
    num_bottom_codes: int
    top_shape: tuple[int, int, int]
    bottom_shape: tuple[int, int, int]
    given_top_shape: tuple[int, int, int]
    given_bottom_shape: tuple[int, int, int]
    num_given_frames: int

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | CodeSpec) -> CodeSpec:
        if isinstance(raw, CodeSpec):
            return raw
        shapes = {key: tuple(int(size) for size in raw[key]) for key in SHAPE_KEYS}
        return cls(num_top_codes=int(raw["num_top_codes"]), num_bottom_codes=int(raw["num_bottom_codes"]),
                   num_given_frames=int(raw["num_given_frames"]), **shapes)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON values (lists for shapes): what the manifest and checkpoints' hyperparameters store."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    def shape_of(self, array: str) -> tuple[int, int, int]:
        """Per-clip shape of one of CODE_ARRAYS."""
        return getattr(self, f"{array}_shape")

    @property
    def bytes_per_clip(self) -> int:
        """Disk bytes of one clip's codes in the shards (uint16 codes and an int64 clip id)."""
        return 2 * sum(math.prod(self.shape_of(array)) for array in CODE_ARRAYS) + 8

    @property
    def num_future_top_slices(self) -> int:
        return self.top_shape[0] - self.given_top_shape[0]

    @property
    def num_future_bottom_slices(self) -> int:
        return self.bottom_shape[0] - self.given_bottom_shape[0]

    @property
    def top_to_bottom_stride(self) -> tuple[int, int, int]:
        """Per-axis factor from the top grid to the bottom grid (the VQ-VAE's top stride), e.g. (2, 2, 2)."""
        return tuple(bottom // top for top, bottom in zip(self.top_shape, self.bottom_shape))


SHAPE_KEYS = ("top_shape", "bottom_shape", "given_top_shape", "given_bottom_shape")


def code_spec_of(vqvae, clip_shape: tuple[int, int, int], num_given_frames: int) -> CodeSpec:
    """The codes a VQ-VAE (`vqvideo.models.vqvae.VQVAE`) gives for clips of `clip_shape` (T, H, W) and for their
    first `num_given_frames` encoded alone: shapes from its strides, never re-typed."""
    frames, height, width = clip_shape
    top_shape, bottom_shape = vqvae.latent_shapes(frames, height, width)
    given_top_shape, given_bottom_shape = vqvae.latent_shapes(num_given_frames, height, width)
    return CodeSpec(vqvae.num_top_codes, vqvae.num_bottom_codes, tuple(top_shape), tuple(bottom_shape),
                    tuple(given_top_shape), tuple(given_bottom_shape), num_given_frames)


@dataclass(frozen=True)
class ClipRecord:
    """One encoded clip: frames start_frame, start_frame + frame_stride, ... of video_path, maybe mirrored."""

    clip_id: int
    video_path: str
    rel_path: str
    start_frame: int
    num_frames: int
    frame_stride: int
    flip: bool
    label: str | None
    split: str

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ClipRecord:
        return cls(**{name: raw[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class ShardRecord:
    """A complete shard: `rows` clips; `files` maps array name → {"file", "sha256", "bytes"}."""

    name: str
    rank: int
    rows: int
    files: dict[str, dict[str, Any]]

    @property
    def sha256(self) -> str:
        """One checksum for the whole shard: sha256 over its files' sha256 in SHARD_ARRAYS order."""
        return bytes_sha256("".join(self.files[a]["sha256"] for a in SHARD_ARRAYS).encode())

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ShardRecord:
        return cls(name=raw["name"], rank=int(raw["rank"]), rows=int(raw["rows"]), files=raw["files"])

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "rank": self.rank, "rows": self.rows, "sha256": self.sha256, "files": self.files}


@dataclass(frozen=True)
class CacheIdentity:
    """What must match for an existing cache (complete or partial) to be reused or resumed."""

    vqvae_checkpoint: str
    vqvae_sha256: str
    vqvae_hparams: dict[str, Any]
    index_fingerprint: str
    selection: dict[str, Any]
    plan_sha256: str

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> CacheIdentity:
        return cls(**{name: raw[name] for name in cls.__dataclass_fields__})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def mismatch(self, other: CacheIdentity) -> str | None:
        """Why `other` (what this run was asked to build) cannot reuse a cache of this identity, or None."""
        if self.vqvae_sha256 != other.vqvae_sha256 or self.vqvae_hparams != other.vqvae_hparams:
            return (
                f"it was built from another VQ-VAE checkpoint or config: {self.vqvae_checkpoint} "
                f"(sha256 {self.vqvae_sha256[:12]}…), not {other.vqvae_checkpoint} (sha256 {other.vqvae_sha256[:12]}…)"
            )
        if self.index_fingerprint != other.index_fingerprint:
            return "it was built from another dataset index (the video files or their split changed)"
        if self.selection != other.selection:
            return f"it was built with other clip options {self.selection}, not {other.selection}"
        if self.plan_sha256 != other.plan_sha256:
            return "the same options now select other clips (the videos or vqvideo's clip windows changed)"
        return None


@dataclass
class Manifest:
    """manifest.json of a complete cache. `clips[i]` is stored at `locations[i] = (shard index, row)`; planned
    clips that could not be read are in `failed_clips` (record + reason) instead, so clip ids may have gaps."""

    identity: CacheIdentity
    code_spec: CodeSpec
    clips: list[ClipRecord]
    shards: list[ShardRecord]
    locations: list[tuple[int, int]] = field(default_factory=list)
    failed_clips: list[dict[str, Any]] = field(default_factory=list)
    format_version: int = FORMAT_VERSION

    def as_dict(self) -> dict[str, Any]:
        clips = [asdict(c) | {"shard": s, "row": r} for c, (s, r) in zip(self.clips, self.locations)]
        return {
            "format_version": self.format_version,
            "identity": self.identity.as_dict(),
            "code_spec": self.code_spec.as_dict(),
            "shards": [s.as_dict() for s in self.shards],
            "failed_clips": self.failed_clips,
            "clips": clips,
        }

    def to_json_bytes(self) -> bytes:
        """Indented JSON, but one line per clip: ~250 bytes a clip, so 400k Kinetics clips stay ~100 MB."""
        payload = self.as_dict()
        clips = payload.pop("clips")
        head = json.dumps(payload, indent=1, sort_keys=True)  # ends with "\n}"
        rows = ",\n  ".join(json.dumps(clip, sort_keys=True, separators=(",", ":")) for clip in clips)
        return f'{head[:-2]},\n "clips": [\n  {rows}\n ]\n}}\n'.encode()

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Manifest:
        return cls(
            format_version=int(raw["format_version"]),
            identity=CacheIdentity.from_dict(raw["identity"]),
            code_spec=CodeSpec.from_dict(raw["code_spec"]),
            shards=[ShardRecord.from_dict(s) for s in raw["shards"]],
            clips=[ClipRecord.from_dict(c) for c in raw["clips"]],
            locations=[(int(c["shard"]), int(c["row"])) for c in raw["clips"]],
            failed_clips=raw.get("failed_clips", []),
        )

    def split_positions(self, split: str) -> list[int]:
        """Positions in `clips` (and `locations`) of the stored clips of `split`."""
        return [position for position, clip in enumerate(self.clips) if clip.split == split]


def read_manifest(cache_dir: str | Path) -> Manifest:
    """The manifest of a complete cache, or a CacheError saying how to build one."""
    path = Path(cache_dir) / MANIFEST_NAME
    if not path.is_file():
        raise CacheError(
            f"no complete code cache at {cache_dir} ({MANIFEST_NAME} missing): build it with "
            f"`vqvideo precompute --vqvae CKPT --out {cache_dir}` (or `make precompute`); an interrupted run "
            "finishes when started again with the same arguments"
        )
    raw = read_json(path)
    if raw.get("format_version") != FORMAT_VERSION:
        raise CacheError(
            f"{path} has cache format version {raw.get('format_version')}, this vqvideo reads version "
            f"{FORMAT_VERSION}: rebuild it with `vqvideo precompute ... --overwrite`"
        )
    return Manifest.from_dict(raw)
