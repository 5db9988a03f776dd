"""The code cache's manifest: what was encoded, by which VQ-VAE, and where each clip's codes live.

A cache directory holds:
  manifest.json              written last, by rank 0, once every rank has finished (this file = complete cache)
  run.json                   identity of the run (VQ-VAE checkpoint sha256 + config, clip plan): a restart
                             with other arguments is refused instead of silently mixing two caches
  progress/rank-<r>.json     shards each rank has completed, with checksums (what a restart trusts)
  shards/rank<r>-<seq>.<array>.npy   uint16 arrays, rows = clips: top, bottom, cond_top, cond_bottom, and
                             int64 clip_id (which clip each row holds)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vqvideo.files import bytes_sha256, read_json

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
RUN_NAME = "run.json"
PROGRESS_DIR = "progress"
SHARD_DIR = "shards"
# arrays of a shard, in the order their checksums are combined into the shard's sha256
CODE_ARRAYS = ("top", "bottom", "cond_top", "cond_bottom")
SHARD_ARRAYS = CODE_ARRAYS + ("clip_id",)


class CacheError(RuntimeError):
    """A cache directory is missing, incomplete, corrupted, or was built from other inputs."""


@dataclass(frozen=True)
class CodeSpec:
    """Shapes and codebook sizes of the codes in a cache (per clip, without the batch dimension).

    top_shape (Tt, Ht, Wt), bottom_shape (Tb, Hb, Wb): the 16-frame encoding.
    cond_top_shape (Tc, Ht, Wt), cond_bottom_shape (Tcb, Hb, Wb): the `num_given_frames` encoded alone.
    """

    num_top_codes: int
    num_bottom_codes: int
    top_shape: tuple[int, int, int]
    bottom_shape: tuple[int, int, int]
    cond_top_shape: tuple[int, int, int]
    cond_bottom_shape: tuple[int, int, int]
    num_given_frames: int

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> CodeSpec:
        shapes = {k: tuple(int(s) for s in raw[k]) for k in ("top_shape", "bottom_shape", "cond_top_shape", "cond_bottom_shape")}
        return cls(
            num_top_codes=int(raw["num_top_codes"]),
            num_bottom_codes=int(raw["num_bottom_codes"]),
            num_given_frames=int(raw["num_given_frames"]),
            **shapes,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def shape_of(self, array: str) -> tuple[int, int, int]:
        return getattr(self, f"{array}_shape")


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
