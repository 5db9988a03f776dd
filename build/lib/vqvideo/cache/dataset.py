"""`CodesDataModule`: the priors' training data, read from the code cache (`vqvideo precompute`).

Everything the priors see of the given frames comes from those frames encoded alone (given_top, given_bottom:
what prediction will have); everything they learn to predict comes from the whole clip's encoding (top slices
Tg.., bottom slices Tgb..). `splice_codes` joins the two into one volume per level. Batches (int64):
  target "top":    given_top (B, Tg, Ht, Wt), given_bottom (B, Tgb, Hb, Wb), target_top (B, Tt - Tg, Ht, Wt)
  target "bottom": top_codes (B, Tt, Ht, Wt), bottom_codes (B, Tb, Hb, Wb) spliced, slice_index (B,): the bottom
                   slice to model, uniform in [Tgb, Tb) — random in train, a fixed function of the clip otherwise.

Reads are memory-mapped (`np.load(mmap_mode="r")`, opened lazily in each worker process) and batched: a batch
gathers its rows shard by shard with one fancy index per array (`__getitems__`), so shuffling across shards
costs no more than reading in order. Under DDP Lightning gives each rank its part via DistributedSampler.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pytorch_lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from vqvideo.cache.manifest import CODE_ARRAYS, CacheError, CodeSpec, Manifest, read_manifest
from vqvideo.cache.shards import open_shard

TARGETS = ("top", "bottom")
TARGET_ARRAYS = {"top": ("top", "given_top", "given_bottom"), "bottom": CODE_ARRAYS}  # what each prior reads
_HASH_MULTIPLIER = 2654435761  # Knuth's multiplicative hash: validation slice of a clip, spread over clips


def splice_codes(given: torch.Tensor, full: torch.Tensor) -> torch.Tensor:
    """given: (B, Tg, H, W) codes of the given frames encoded alone; full: (B, T, H, W) codes of the whole clip
    -> (B, T, H, W): the first Tg slices from `given`, the rest from `full`."""
    num_given = given.shape[1]
    if given.shape[0] != full.shape[0] or given.shape[2:] != full.shape[2:] or num_given > full.shape[1]:
        raise ValueError(f"cannot splice given codes {tuple(given.shape)} into full codes {tuple(full.shape)}")
    return torch.cat([given, full[:, num_given:]], dim=1)


def _batch_as_is(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """collate_fn for datasets whose `__getitems__` already returns a whole batch."""
    return batch


class CodesDataset(Dataset):
    """The clips of one split of a code cache, as prior inputs for `target` (see the module docstring)."""

    def __init__(self, cache_dir: str | Path, manifest: Manifest, split: str, target: str,
                 random_slices: bool, seed: int = 0, in_memory: bool = False) -> None:
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        self.cache_dir, self.shards, self.spec = Path(cache_dir), manifest.shards, manifest.code_spec
        self.target, self.random_slices, self.seed, self.in_memory = target, random_slices, seed, in_memory
        positions = manifest.split_positions(split)
        self.shard_of = np.array([manifest.locations[p][0] for p in positions], dtype=np.int64)  # (N,)
        self.row_of = np.array([manifest.locations[p][1] for p in positions], dtype=np.int64)  # (N,)
        self.clip_ids = np.array([manifest.clips[p].clip_id for p in positions], dtype=np.int64)  # (N,)
        self._arrays: list[dict[str, np.ndarray]] | None = None
        self._arrays_pid: int | None = None

    def __len__(self) -> int:
        return len(self.clip_ids)

    def __getstate__(self) -> dict[str, Any]:
        return self.__dict__ | {"_arrays": None, "_arrays_pid": None}  # workers open their own memmaps

    def _shard_arrays(self) -> list[dict[str, np.ndarray]]:
        if self._arrays is None or self._arrays_pid != os.getpid():
            shards = [open_shard(self.cache_dir, shard, mmap=not self.in_memory) for shard in self.shards]
            # plain ndarray views of the maps: np.memmap's subclass hooks cost more than the copy itself
            self._arrays = [{name: np.asarray(values) for name, values in arrays.items()} for arrays in shards]
            self._arrays_pid = os.getpid()
        return self._arrays

    def gather(self, positions: np.ndarray, names: tuple[str, ...] = CODE_ARRAYS) -> dict[str, torch.Tensor]:
        """Raw codes of dataset positions (N,) -> {name: (N, ...) int64} for `names` of CODE_ARRAYS."""
        arrays = self._shard_arrays()
        shard_of, row_of = self.shard_of[positions], self.row_of[positions]
        shards = np.unique(shard_of)
        if len(shards) == 1:  # one fancy index per array, no scatter
            source = arrays[shards[0]]
            return {name: torch.from_numpy(source[name][row_of]).to(torch.int64) for name in names}
        groups = [(arrays[shard], shard_of == shard) for shard in shards]
        out = {}
        for name in names:
            gathered = np.empty((len(positions), *self.spec.shape_of(name)), dtype=np.uint16)
            for source, in_shard in groups:
                gathered[in_shard] = source[name][row_of[in_shard]]
            out[name] = torch.from_numpy(gathered).to(torch.int64)
        return out

    def slice_indices(self, positions: np.ndarray) -> torch.Tensor:
        """(N,) int64 bottom slice to model per sample, uniform in [Tgb, Tb)."""
        low, high = self.spec.given_bottom_shape[0], self.spec.bottom_shape[0]
        if self.random_slices:
            return torch.randint(low, high, (len(positions),))
        hashed = (positions.astype(np.uint64) * np.uint64(_HASH_MULTIPLIER) + np.uint64(self.seed)) % np.uint64(2**32)
        return torch.from_numpy((low + hashed % np.uint64(high - low)).astype(np.int64))

    def __getitems__(self, positions: list[int]) -> dict[str, torch.Tensor]:
        positions = np.asarray(positions, dtype=np.int64)
        codes = self.gather(positions, TARGET_ARRAYS[self.target])
        if self.target == "top":
            num_given_top = self.spec.given_top_shape[0]
            return {"given_top": codes["given_top"], "given_bottom": codes["given_bottom"],
                    "target_top": codes["top"][:, num_given_top:]}
        return {"top_codes": splice_codes(codes["given_top"], codes["top"]),
                "bottom_codes": splice_codes(codes["given_bottom"], codes["bottom"]),
                "slice_index": self.slice_indices(positions)}

    def __getitem__(self, position: int) -> dict[str, torch.Tensor]:
        return {name: value[0] for name, value in self.__getitems__([position]).items()}


class CodesDataModule(LightningDataModule):
    """Prior training data from the code cache in `cache_dir` (see the module docstring).

    target: "top" or "bottom" (which prior). train_split / val_split / test_split: the manifest's splits to serve
    (`vqvideo test` scores test_split: a cache of Kinetics' test folder, or the held-out val clips by default).
    in_memory: load the shards into RAM instead of memory-mapping them (small caches, benchmarks).
    seed: fixes the validation slice of each clip (target "bottom").
    """

    def __init__(self, cache_dir: str = "outputs/demo/codes", target: str = "top", batch_size: int = 32,
                 num_workers: int = 2, train_split: str = "train", val_split: str = "val", test_split: str = "val",
                 pin_memory: bool = False, in_memory: bool = False, seed: int = 0) -> None:
        super().__init__()
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        self.save_hyperparameters()
        self._manifest: Manifest | None = None
        self.datasets: dict[str, CodesDataset] = {}

    @property
    def manifest(self) -> Manifest:
        if self._manifest is None:
            self._manifest = read_manifest(self.hparams.cache_dir)
        return self._manifest

    @property
    def code_spec(self) -> CodeSpec:
        """The cache's latent facts (manifest.json): the CLI links them into the prior being trained."""
        return self.manifest.code_spec

    @property
    def vqvae_checkpoint(self) -> str:
        """The VQ-VAE checkpoint that encoded this cache (its manifest's identity): it decodes the priors' codes."""
        return self.manifest.identity.vqvae_checkpoint

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        for split, random_slices in ((hp.train_split, True), (hp.val_split, False), (hp.test_split, False)):
            if split not in self.datasets:
                self.datasets[split] = CodesDataset(hp.cache_dir, self.manifest, split, hp.target,
                                                    random_slices, hp.seed, hp.in_memory)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        hp = self.hparams
        self.setup()
        if len(self.datasets[split]) == 0:
            raise CacheError(
                f"the code cache {hp.cache_dir} has no {split!r} clips: rebuild it with `vqvideo precompute "
                f"--splits [train,val] ...`, or turn validation off (trainer.limit_val_batches=0)"
            )
        return DataLoader(self.datasets[split], batch_size=hp.batch_size, shuffle=shuffle,
                          num_workers=hp.num_workers, pin_memory=hp.pin_memory, collate_fn=_batch_as_is,
                          persistent_workers=hp.num_workers > 0, drop_last=False)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.hparams.train_split, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.hparams.val_split, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.hparams.test_split, shuffle=False)

