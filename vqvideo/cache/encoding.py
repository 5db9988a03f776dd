"""The prediction loop that fills the cache: clips in, codes out (`trainer.predict`).

`PendingClipsDataModule` serves the planned clips no complete shard holds yet (read after the writer's
setup has cleaned up a killed run), read exactly as prediction reads them (`read_clip`, center crop).
`CodeEncoderModule` wraps the frozen VQ-VAE; its `predict_step` encodes each clip twice — all 16 frames, and
the first `num_given_frames` alone with `encode_given_frames`, the function prediction calls — and returns
the codes. No collectives run inside `predict_step`: under DDP Lightning gives each rank a disjoint,
unpadded part of the clips (its unrepeated sampler), so ranks may finish with different batch counts.
"""

from __future__ import annotations

import warnings
from pathlib import Path
import torch
from pytorch_lightning import LightningDataModule, LightningModule
from torch.utils.data import DataLoader, Dataset

from vqvideo.cache.manifest import ClipRecord
from vqvideo.cache.shards import done_clip_ids
from vqvideo.data.video import VideoReadError, read_clip
from vqvideo.models.vqvae import VQVAE, encode_given_frames


class ClipDataset(Dataset):
    """Planned clips as model input: {"clip_id": () int64, "video": (3, T, H, W) float32 in [-1, 1],
    "read_error": str}. A clip whose video cannot be read comes back as zeros with the reason in read_error
    (the writer records it as failed instead of storing codes), so one broken file does not stop a Kinetics run."""

    def __init__(self, clips: list[ClipRecord], resolution: int, decode_device: str = "cpu",
                 source_sizes: dict[str, tuple[int, int]] | None = None) -> None:
        self.clips, self.resolution, self.decode_device = clips, resolution, decode_device
        self.source_sizes = source_sizes or {}  # video path -> (height, width) from the index: no re-probing

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, position: int) -> dict[str, torch.Tensor | str]:
        clip = self.clips[position]
        clip_id = torch.tensor(clip.clip_id, dtype=torch.int64)
        try:
            video = read_clip(clip.video_path, clip.start_frame, clip.num_frames, clip.frame_stride,
                              resolution=self.resolution, crop="center", flip=clip.flip,
                              decode_device=self.decode_device, source_size=self.source_sizes.get(clip.video_path))
        except VideoReadError as error:
            warnings.warn(f"clip {clip.clip_id} not encoded: {error}", stacklevel=2)
            blank = torch.zeros(3, clip.num_frames, self.resolution, self.resolution)
            return {"clip_id": clip_id, "video": blank, "read_error": str(error)}
        return {"clip_id": clip_id, "video": video, "read_error": ""}


class PendingClipsDataModule(LightningDataModule):
    """The clips of `clips` not yet in a complete shard of `cache_dir`, in plan order, never shuffled."""

    def __init__(self, cache_dir: str, clips: list[ClipRecord], resolution: int, batch_size: int = 8,
                 num_workers: int = 0, decode_device: str = "cpu",
                 source_sizes: dict[str, tuple[int, int]] | None = None) -> None:
        super().__init__()
        self.cache_dir, self.clips, self.resolution = Path(cache_dir), clips, resolution
        self.source_sizes = source_sizes
        self.batch_size, self.num_workers, self.decode_device = batch_size, num_workers, decode_device
        self.num_pending: int | None = None

    def predict_dataloader(self) -> DataLoader:
        # Called after every rank's setup (Lightning's post-setup barrier): the cleanup of a killed run is done
        # and no rank has written yet, so all ranks see the same pending list and the sampler splits it evenly.
        done = done_clip_ids(self.cache_dir)
        pending = [clip for clip in self.clips if clip.clip_id not in done]
        self.num_pending = len(pending)
        return DataLoader(ClipDataset(pending, self.resolution, self.decode_device, self.source_sizes), batch_size=self.batch_size,
                          shuffle=False, num_workers=self.num_workers, persistent_workers=False)


class CodeEncoderModule(LightningModule):
    """A frozen VQ-VAE for `trainer.predict`: batches of clips -> their full and given-frame codes.

    Every batch is encoded at exactly `batch_size` clips (a short last batch is padded with copies of its last
    clip, then cut): convolution kernels are chosen by batch size and round differently, which can flip a code
    at a near-tie, so a clip's codes must not depend on how a run — or its restart — happened to batch it.
    """

    def __init__(self, vqvae: VQVAE, num_given_frames: int = 4, batch_size: int = 8) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["vqvae"])
        self.vqvae = vqvae.freeze()  # eval, no grads, stays in eval under .train()
        self.num_given_frames, self.batch_size = num_given_frames, batch_size

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        """batch: clip_id (B,) int64, video (B, 3, T, H, W) float [-1, 1], read_error: B strings -> clip_id,
        read_error and int64 codes top (B, Tt, Ht, Wt), bottom (B, Tb, Hb, Wb), cond_top (B, Tc, Ht, Wt),
        cond_bottom (B, Tcb, Hb, Wb)."""
        video, num_clips = batch["video"], batch["video"].shape[0]
        if num_clips < self.batch_size:
            padding = video[-1:].expand(self.batch_size - num_clips, *video.shape[1:])
            video = torch.cat([video, padding])  # (batch_size, 3, T, H, W)
        full = self.vqvae.encode(video)
        given = encode_given_frames(self.vqvae, video, self.num_given_frames)
        return {"clip_id": batch["clip_id"], "read_error": batch["read_error"], "top": full.top[:num_clips],
                "bottom": full.bottom[:num_clips], "cond_top": given.top[:num_clips],
                "cond_bottom": given.bottom[:num_clips]}
