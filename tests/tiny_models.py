"""Tiny models shared by the tests: configs small enough for a 2-core CPU, the latent facts they run on, module
factories, random code batches, synthetic clips, the architectures and latent facts of the YAMLs in experiments/,
checkpoints as Lightning writes them, and the gradient probe of a PixelCNN's causality.

Latent facts of the tiny stages (`TINY_SPEC`): clips of CLIP_SHAPE = 16×32×32 through the tiny VQ-VAE (Table 3
strides) give top codes 4×4×4 and bottom codes 8×8×8; the 4 given frames encoded alone give 1×4×4 and 2×8×8.
The two codebooks differ in size so a prior that swaps them fails.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
import yaml

from vqvideo.cache.manifest import CodeSpec
from vqvideo.lit.bottom_prior_module import BottomPriorModule
from vqvideo.lit.configs import read_yaml
from vqvideo.lit.optimization import OptimizationConfig
from vqvideo.lit.top_prior_module import TopPriorModule
from vqvideo.lit.vqvae_module import VQVAEModule
from vqvideo.models.bottom_prior import BottomPrior, BottomPriorConfig
from vqvideo.models.top_prior import TopPrior, TopPriorConfig
from vqvideo.models.vqvae import VQVAEConfig

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
CLIP_SHAPE = (16, 32, 32)
NUM_TOP_CODES, NUM_BOTTOM_CODES = 16, 24
TINY_SPEC = CodeSpec(num_top_codes=NUM_TOP_CODES, num_bottom_codes=NUM_BOTTOM_CODES, top_shape=(4, 4, 4),
                     bottom_shape=(8, 8, 8), given_top_shape=(1, 4, 4), given_bottom_shape=(2, 8, 8),
                     num_given_frames=4)
FAST_OPTIMIZATION = OptimizationConfig(learning_rate=3e-3, warmup_steps=1)


# ----- configs ---------------------------------------------------------------------------------------
def tiny_vqvae_config(**overrides) -> VQVAEConfig:
    config = VQVAEConfig(hidden_channels=16, residual_channels=8, num_residual_layers=1, num_top_codes=NUM_TOP_CODES,
                         num_bottom_codes=NUM_BOTTOM_CODES, code_dim=8)
    return replace(config, **overrides)


def tiny_top_config(**overrides) -> TopPriorConfig:
    config = TopPriorConfig(hidden_channels=16, residual_channels=16, num_layers=2, num_attention_layers=1,
                            num_heads=2, kernel_size=3, dropout=0.0, cond_embed_dim=8, cond_downsampled_channels=8,
                            cond_channels=8, cond_residual_channels=8, num_cond_blocks=1)
    return replace(config, **overrides)


def tiny_bottom_config(**overrides) -> BottomPriorConfig:
    config = BottomPriorConfig(hidden_channels=16, residual_channels=16, num_layers=2, num_attention_layers=1,
                               num_heads=2, kernel_size=3, dropout=0.0, window=2, cond_embed_dim=8,
                               cond_top_channels=8, cond_window_channels=8, cond_channels=8, cond_residual_channels=8,
                               num_cond_blocks=1)
    return replace(config, **overrides)


def tiny_code_spec(**overrides) -> CodeSpec:
    return replace(TINY_SPEC, **overrides)


# ----- models and modules -----------------------------------------------------------------------------
def top_prior(config: TopPriorConfig, spec: CodeSpec = TINY_SPEC) -> TopPrior:
    """A TopPrior for the latent facts of `spec`, wired as TopPriorModule wires it."""
    return TopPrior(config, spec.num_top_codes, spec.num_bottom_codes, spec.given_top_shape[0],
                    spec.given_bottom_shape[0], spec.num_future_top_slices)


def bottom_prior(config: BottomPriorConfig, spec: CodeSpec = TINY_SPEC) -> BottomPrior:
    """A BottomPrior for the latent facts of `spec`, wired as BottomPriorModule wires it."""
    return BottomPrior(config, spec.num_top_codes, spec.num_bottom_codes, spec.top_to_bottom_stride)


def tiny_vqvae_module(clip_shape: tuple[int, int, int] | None = CLIP_SHAPE, optimization=FAST_OPTIMIZATION,
                      **overrides) -> VQVAEModule:
    return VQVAEModule(vqvae=tiny_vqvae_config(**overrides), optimization=optimization, clip_shape=clip_shape)


def tiny_top_module(spec: CodeSpec = TINY_SPEC, optimization=FAST_OPTIMIZATION, **overrides) -> TopPriorModule:
    return TopPriorModule(prior=tiny_top_config(**overrides), code_spec=spec, optimization=optimization)


def tiny_bottom_module(spec: CodeSpec = TINY_SPEC, optimization=FAST_OPTIMIZATION, **overrides) -> BottomPriorModule:
    return BottomPriorModule(prior=tiny_bottom_config(**overrides), code_spec=spec, optimization=optimization)


# ----- random codes -----------------------------------------------------------------------------------
def top_batch(spec: CodeSpec = TINY_SPEC, batch_size: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    """What CodesDataModule(target="top") yields: given_top, given_bottom, target_top, int64 random codes."""
    generator = torch.Generator().manual_seed(seed)
    future = (spec.num_future_top_slices, *spec.top_shape[1:])
    return {
        "given_top": torch.randint(spec.num_top_codes, (batch_size, *spec.given_top_shape), generator=generator),
        "given_bottom": torch.randint(spec.num_bottom_codes, (batch_size, *spec.given_bottom_shape),
                                      generator=generator),
        "target_top": torch.randint(spec.num_top_codes, (batch_size, *future), generator=generator),
    }


def bottom_batch(spec: CodeSpec = TINY_SPEC, batch_size: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    """What CodesDataModule(target="bottom") yields: top_codes, bottom_codes and a slice_index per sample to
    model, in [given bottom slices, bottom slices)."""
    generator = torch.Generator().manual_seed(seed)
    low, high = spec.given_bottom_shape[0], spec.bottom_shape[0]
    return {
        "top_codes": torch.randint(spec.num_top_codes, (batch_size, *spec.top_shape), generator=generator),
        "bottom_codes": torch.randint(spec.num_bottom_codes, (batch_size, *spec.bottom_shape), generator=generator),
        "slice_index": torch.randint(low, high, (batch_size,), generator=generator),
    }


# ----- synthetic clips --------------------------------------------------------------------------------
def blob_clips(num_clips: int, seed: int) -> list[dict]:
    """Smooth moving-blob clips (B, 3, 8, 32, 32) in [-1, 1] as the datamodule's dicts."""
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(8).float()[:, None, None]
    y, x = torch.meshgrid(torch.arange(32).float(), torch.arange(32).float(), indexing="ij")
    clips = []
    for _ in range(num_clips):
        cy, cx, vy, vx = (torch.rand(4, generator=generator) * torch.tensor([32, 32, 2, 2])).tolist()
        blob = torch.exp(-((y - cy - vy * t) ** 2 + (x - cx - vx * t) ** 2) / 40.0)  # (8, 32, 32)
        colour = torch.rand(3, generator=generator)[:, None, None, None]
        clips.append(blob[None] * colour * 2 - 1)
    return [{"video": clip[None]} for clip in clips]


def collate(items: list[dict]) -> dict:
    return {"video": torch.cat([item["video"] for item in items])}


# ----- the experiments' configs -------------------------------------------------------------------------
def yaml_init_args(experiment: str, stage: str) -> dict:
    """model.init_args of experiments/<experiment>/<stage>.yaml."""
    return read_yaml(EXPERIMENTS / experiment / f"{stage}.yaml")["model"]["init_args"]


def yaml_prior_config(experiment: str, stage: str) -> TopPriorConfig | BottomPriorConfig:
    """The prior architecture of experiments/<experiment>/<stage>.yaml (stage top_prior or bottom_prior)."""
    config_class = {"top_prior": TopPriorConfig, "bottom_prior": BottomPriorConfig}[stage]
    return config_class(**yaml_init_args(experiment, stage)["prior"])


def experiment_code_spec(experiment: str) -> CodeSpec:
    """The latent facts an experiment's priors train on, derived from its vqvae.yaml (and precompute.yaml) as
    `vqvideo describe` does while no code cache exists: never re-typed in a test."""
    from vqvideo.lit.configs import planned_code_spec

    return planned_code_spec(EXPERIMENTS / experiment / "vqvae.yaml")


# ----- checkpoints ------------------------------------------------------------------------------------
def save_checkpoint(module, path: Path, datamodule_hparams: dict | None = None) -> Path:
    """What Lightning's checkpoints hold and `load_stage` reads: {"state_dict", "hyper_parameters"} and, when
    given, the DataModule's "datamodule_hyper_parameters" (as LightningCLI saves them)."""
    checkpoint = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}
    if datamodule_hparams:
        checkpoint["datamodule_hyper_parameters"] = datamodule_hparams
    torch.save(checkpoint, path)
    return path


# ----- probes -----------------------------------------------------------------------------------------
def input_reach(pixelcnn, codes: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
    """(N, N) bool for a GatedPixelCNN: [n, m] is True iff the logits at position n have a non-zero gradient with
    respect to the code embedding at position m (positions flattened in generation order). codes (1, T, H, W)
    int64, cond (1, C, T, H, W). One backward pass: the input is repeated N times along the batch and copy n
    back-propagates from position n only (samples are independent)."""
    num_positions = codes[0].numel()
    embedded = pixelcnn.embed_codes(codes).detach().repeat(num_positions, 1, 1, 1, 1).requires_grad_(True)
    logits = pixelcnn.logits_from_embedding(embedded, cond.detach().repeat(num_positions, 1, 1, 1, 1)).flatten(2)
    weights = torch.randn(logits.shape[1], generator=torch.Generator().manual_seed(1), dtype=logits.dtype)
    own_position = logits[torch.arange(num_positions), :, torch.arange(num_positions)]  # (N, K)
    (grad,) = torch.autograd.grad((own_position @ weights).sum(), embedded)
    return grad.abs().sum(dim=1).flatten(1) > 0
