"""EMA vector quantizer: the discretisation bottleneck of §2.1 (eq. 1) with the codebook learned by eq. 3.

One quantizer per level of the hierarchy (top, bottom). What it guarantees:
- nearest-neighbour search and every EMA update run in float32, even under bf16/fp16 autocast;
- the gradient reaches the encoder straight through (`z_e + sg[z_q - z_e]`) while training;
- with torch.distributed initialised, the per-batch EMA statistics are all-reduced (summed) before the
  update, and data initialisation and dead-code restarts are broadcast from rank 0, so every rank holds
  the identical codebook. Every branch around a collective depends only on all-reduced values, so all ranks
  take it together (rank-dependent branching around collectives is what hung other implementations);
- the "initialised from data" flag is a registered buffer, so a resumed checkpoint never re-initialises.
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


class QuantizerOutput(NamedTuple):
    """quantized: (B, D, T, H, W) in the input dtype (straight-through while training);
    codes: (B, T, H, W) int64; commitment_loss: () float32, mean ||z_e - sg[e]||^2 per element;
    perplexity: () float32, exp(entropy) of this batch's code histogram (all ranks while training);
    fraction_used: () float32, fraction of the codebook used in the batch;
    restarts: () int64, dead codes restarted on this step (0 outside training)."""

    quantized: Tensor
    codes: Tensor
    commitment_loss: Tensor
    perplexity: Tensor
    fraction_used: Tensor
    restarts: Tensor


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _float32_region(device: torch.device):
    """Autocast off, so distances and EMA updates are float32 (mixed precision gave NaN codebooks)."""
    if device.type in ("cuda", "cpu", "xpu", "mps"):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()  # meta device (describe): autocast does not apply


class EMAVectorQuantizer(nn.Module):
    """Codebook of `num_codes` vectors of `code_dim`, nearest-neighbour lookup, EMA codebook (eq. 3).

    decay: γ of eq. 3. epsilon: Laplace smoothing of the cluster sizes (no division by zero for unused codes).
    data_init: initialise the codebook from the first training batch's encoder outputs.
    restart_dead_codes: a code unused (on all ranks) for `dead_code_patience` consecutive training steps is
    moved onto a random encoder output of the current batch (rank 0's choice, broadcast).
    """

    def __init__(
        self,
        num_codes: int = 512,
        code_dim: int = 64,
        decay: float = 0.99,
        epsilon: float = 1e-5,
        data_init: bool = True,
        restart_dead_codes: bool = False,
        dead_code_patience: int = 50,
    ):
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.num_codes, self.code_dim = num_codes, code_dim
        self.decay, self.epsilon = decay, epsilon
        self.restart_dead_codes, self.dead_code_patience = restart_dead_codes, dead_code_patience
        codebook = torch.randn(num_codes, code_dim) / code_dim**0.5
        self.register_buffer("codebook", codebook)  # (K, D) float32, e_i of eq. 3
        self.register_buffer("ema_cluster_size", torch.ones(num_codes))  # (K,) N_i
        self.register_buffer("ema_code_sum", codebook.clone())  # (K, D) m_i
        self.register_buffer("initialized", torch.tensor(not data_init))  # () bool, survives checkpoints
        self.register_buffer("steps_unused", torch.zeros(num_codes, dtype=torch.long))  # (K,)
        self.register_buffer("total_restarts", torch.zeros((), dtype=torch.long))  # () cumulative count

    # ----- inference -------------------------------------------------------------------------------
    def nearest_codes(self, latents: Tensor) -> Tensor:
        """latents: (B, D, T, H, W) any float dtype -> codes (B, T, H, W) int64 (eq. 1)."""
        batch, _, frames, height, width = latents.shape
        flat = rearrange(latents, "b d t h w -> (b t h w) d")
        codes = self._nearest(flat)
        return rearrange(codes, "(b t h w) -> b t h w", b=batch, t=frames, h=height, w=width)

    def embed(self, codes: Tensor) -> Tensor:
        """codes: (B, T, H, W) int64 -> code vectors (B, D, T, H, W) float32."""
        if codes.numel() and not self.codebook.is_meta and (codes.min() < 0 or codes.max() >= self.num_codes):
            raise ValueError(f"codes must lie in [0, {self.num_codes}), got [{codes.min()}, {codes.max()}]")
        return rearrange(F.embedding(codes, self.codebook), "b t h w d -> b d t h w")

    def _nearest(self, flat: Tensor) -> Tensor:
        """flat: (N, D) -> (N,) int64 index of the nearest code (squared L2, float32)."""
        with _float32_region(flat.device):
            # ||e||^2 - 2 z.e in one addmm: ||z||^2 is the same for every code of a row, so the argmin needs no
            # (N, K)-sized pass to add it
            distances = torch.addmm(self.codebook.pow(2).sum(1), flat.float(), self.codebook.t(), alpha=-2)  # (N, K)
            return distances.argmin(dim=1)

    # ----- training --------------------------------------------------------------------------------
    def forward(self, latents: Tensor) -> QuantizerOutput:
        """latents: (B, D, T, H, W) encoder output z_e -> QuantizerOutput. Updates the EMA codebook in training."""
        batch, _, frames, height, width = latents.shape
        flat = rearrange(latents, "b d t h w -> (b t h w) d").detach().float()  # (N, D)
        restarts = torch.zeros((), dtype=torch.long, device=latents.device)
        if self.training and not bool(self.initialized):
            self._init_from_data(flat)
        codes_flat = self._nearest(flat)  # (N,)
        with _float32_region(latents.device):
            quantized_flat = self.codebook[codes_flat]  # (N, D) float32: the codes chosen, before this update
            latents_flat = rearrange(latents, "b d t h w -> (b t h w) d").float()  # (N, D), keeps the graph
            commitment_loss = F.mse_loss(latents_flat, quantized_flat)
            counts = self._histogram(codes_flat)  # (K,) float32
            if self.training:
                counts = self._ema_update(flat, codes_flat, counts)
                if self.restart_dead_codes:
                    restarts = self._restart_dead_codes(flat, counts)
            probs = counts / counts.sum().clamp_min(1.0)
            perplexity = torch.exp(-(probs * torch.log(probs.clamp_min(1e-10))).sum())
            fraction_used = (counts > 0).float().mean()
        quantized = rearrange(quantized_flat, "(b t h w) d -> b d t h w", b=batch, t=frames, h=height, w=width)
        quantized = quantized.to(latents.dtype)
        if self.training:
            quantized = latents + (quantized - latents).detach()  # straight-through estimator
        codes = rearrange(codes_flat, "(b t h w) -> b t h w", b=batch, t=frames, h=height, w=width)
        return QuantizerOutput(quantized, codes, commitment_loss, perplexity, fraction_used, restarts)

    def _histogram(self, codes_flat: Tensor) -> Tensor:
        """codes_flat: (N,) int64 -> (K,) float32 counts. On meta (describe) shapes only."""
        if codes_flat.is_meta:
            return torch.zeros(self.num_codes, device=codes_flat.device)
        return torch.bincount(codes_flat, minlength=self.num_codes).float()

    @torch.no_grad()
    def _init_from_data(self, flat: Tensor) -> None:
        """Codebook := K random encoder outputs of this batch (rank 0's, broadcast); repeats if N < K."""
        with _float32_region(flat.device):
            picks = torch.randint(0, flat.shape[0], (self.num_codes,), device=flat.device)
            codebook = flat[picks] + 1e-3 * flat.std() * torch.randn_like(flat[picks])
            if _distributed():
                dist.broadcast(codebook, src=0)
            self.codebook.copy_(codebook)
            self.ema_code_sum.copy_(codebook)
            self.ema_cluster_size.fill_(1.0)
            self.initialized.fill_(True)

    @torch.no_grad()
    def _ema_update(self, flat: Tensor, codes_flat: Tensor, counts: Tensor) -> Tensor:
        """Eq. 3 with statistics summed over ranks; returns the (all-reduced) counts (K,)."""
        code_sums = torch.zeros_like(self.ema_code_sum).index_add_(0, codes_flat, flat)  # (K, D) Σ_j z_e
        if _distributed():
            dist.all_reduce(counts)
            dist.all_reduce(code_sums)
        self.ema_cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.ema_code_sum.mul_(self.decay).add_(code_sums, alpha=1 - self.decay)
        total = self.ema_cluster_size.sum()
        smoothed = (self.ema_cluster_size + self.epsilon) / (total + self.num_codes * self.epsilon) * total
        self.codebook.copy_(self.ema_code_sum / smoothed[:, None])
        return counts

    @torch.no_grad()
    def _restart_dead_codes(self, flat: Tensor, counts: Tensor) -> Tensor:
        """Move codes unused for `dead_code_patience` steps onto random current encoder outputs.

        Returns () int64 number restarted. Rank 0 picks the vectors and broadcasts them; the dead set comes from
        all-reduced counts, so every rank enters the broadcast on the same steps."""
        self.steps_unused.add_(1).masked_fill_(counts > 0, 0)
        dead = self.steps_unused >= self.dead_code_patience  # identical on all ranks (all-reduced counts)
        num_dead = int(dead.sum())
        if num_dead:
            picks = torch.randint(0, flat.shape[0], (num_dead,), device=flat.device)
            self.codebook[dead] = flat[picks]
            if _distributed():
                dist.broadcast(self.codebook, src=0)
            self.ema_code_sum[dead] = self.codebook[dead]
            self.ema_cluster_size[dead] = 1.0
            self.steps_unused[dead] = 0
            self.total_restarts.add_(num_dead)
        return torch.tensor(num_dead, device=flat.device)
