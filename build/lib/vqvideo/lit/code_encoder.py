"""The frozen VQ-VAE as a prediction-loop module: clips in, their codes out (`vqvideo precompute`, the eval).

`predict_step` encodes each clip twice — all frames, and the first `num_given_frames` alone with
`encode_given_frames`, the function prediction calls — and returns the codes. No collectives run inside
`predict_step`: under DDP Lightning gives each rank a disjoint, unpadded part of the clips (its unrepeated
sampler), so ranks may finish with different batch counts.
"""

from __future__ import annotations

import torch
from pytorch_lightning import LightningModule

from vqvideo.models.vqvae import NUM_GIVEN_FRAMES, VQVAE, encode_given_frames


class CodeEncoderModule(LightningModule):
    """A frozen VQ-VAE for `trainer.predict`: batches of clips → their full and given-frame codes.

    Every batch is encoded at exactly `batch_size` clips (a short last batch is padded with copies of its last
    clip, then cut): convolution kernels are chosen by batch size and round differently, which can flip a code
    at a near-tie, so a clip's codes must not depend on how a run — or its restart — happened to batch it.
    """

    def __init__(self, vqvae: VQVAE, num_given_frames: int = NUM_GIVEN_FRAMES, batch_size: int = 8) -> None:
        super().__init__()
        self.vqvae = vqvae.freeze()  # eval, no grads, stays in eval under .train()
        self.num_given_frames, self.batch_size = num_given_frames, batch_size

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        """batch: clip_id (B,) int64, video (B, 3, T, H, W) float [-1, 1], read_error: B strings → clip_id,
        read_error and int64 codes top (B, Tt, Ht, Wt), bottom (B, Tb, Hb, Wb), given_top (B, Tg, Ht, Wt),
        given_bottom (B, Tgb, Hb, Wb)."""
        video, num_clips = batch["video"], batch["video"].shape[0]
        if num_clips < self.batch_size:
            padding = video[-1:].expand(self.batch_size - num_clips, *video.shape[1:])
            video = torch.cat([video, padding])  # (batch_size, 3, T, H, W)
        full = self.vqvae.encode(video)
        given = encode_given_frames(self.vqvae, video, self.num_given_frames)
        return {"clip_id": batch["clip_id"], "read_error": batch["read_error"], "top": full.top[:num_clips],
                "bottom": full.bottom[:num_clips], "given_top": given.top[:num_clips],
                "given_bottom": given.bottom[:num_clips]}
