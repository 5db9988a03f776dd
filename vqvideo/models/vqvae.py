"""Hierarchical video VQ-VAE (paper §3.1, Table 3): the compression stage every later stage builds on.

Encoder: 3D-conv residual stacks. The bottom stage downsamples the clip by `bottom_stride` (Table 3:
kernel (4,8,8), stride (2,4,4): 16×256×256 -> 8×64×64); the top stage downsamples the bottom features by
`top_stride` (kernel (4,4,4), stride (2,2,2) -> 4×32×32). Each level has its own EMA codebook (512×64).
Decoder: the quantized top latents are upsampled by transposed convs to the bottom grid, concatenated
with the quantized bottom latents and decoded to the clip by a transposed conv (4,8,8)/(2,4,4).
During training the bottom half of the decoder input is zeroed for a random subset of clips (§3.1,
"we randomly mask out the bottom layer") so the top latents must carry the global content.

With `causal_time` the encoder's convolutions pad time on the left only (not the paper's design): slice j's codes
then depend only on frames up to its end, so the given frames encoded alone get exactly the codes of the same
slices inside the whole clip, and the priors continue codes the VQ-VAE produces at training time.

Paddings are (kernel - stride) / 2 per axis, so every stride divides its input exactly and a transposed
conv with the same kernel/stride/padding inverts the shape; `latent_shapes` checks this up front.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Literal, NamedTuple

import torch
from torch import Tensor, nn

from vqvideo.models.layers import TimeCausalConv3d, residual_stack
from vqvideo.models.quantizer import EMAVectorQuantizer, QuantizerOutput

Triple = tuple[int, int, int]
NUM_GIVEN_FRAMES = 4  # §3.2: condition on 4 frames, predict 12 (the code cache's default; recorded in its manifest)


@dataclass(frozen=True)
class VQVAEConfig:
    """Architecture of the VQ-VAE; defaults are Table 3's where the paper gives them.

    Args:
        in_channels: video channels (RGB).
        hidden_channels: Table 3 hidden units.
        residual_channels: Table 3 residual units.
        num_residual_layers: Table 3 layers (residual blocks per stack).
        num_top_codes: Table 3 codebook size of the top level.
        num_bottom_codes: Table 3 codebook size of the bottom level (a separate codebook, §3.1).
        code_dim: Table 3 codebook dimension.
        bottom_kernel: Table 3 first-stage encoder (t, h, w) filter size; also the decoder's upsampling conv.
        bottom_stride: Table 3 first-stage encoder stride.
        top_kernel: Table 3 second-stage encoder filter size.
        top_stride: Table 3 second-stage encoder stride.
        ema_decay: γ of eq. 3 (not in the paper).
        ema_epsilon: Laplace smoothing of the EMA cluster sizes (not in the paper).
        data_init: initialise each codebook from the first training batch's encoder outputs.
        restart_dead_codes: move codes unused for `dead_code_patience` steps onto current encoder outputs.
        dead_code_patience: training steps a code may go unused before a restart.
        bottom_mask_prob: probability that a training clip's bottom latents are zeroed in the decoder input
            (§3.1 random masking; the paper does not give the value).
        causal_time: pad the encoder's convolutions in time on the left only, so a slice's codes never depend on
            later frames (given frames alone encode to their in-clip codes). False: the paper's symmetric padding.
        causal_time_padding: with causal_time, what fills the time before the first frame: "zeros", or
            "replicate" (the first slice repeated: a still scene encodes to the same codes from its first slice on).
    """

    in_channels: int = 3
    hidden_channels: int = 128
    residual_channels: int = 32
    num_residual_layers: int = 2
    num_top_codes: int = 512
    num_bottom_codes: int = 512
    code_dim: int = 64
    bottom_kernel: Triple = (4, 8, 8)
    bottom_stride: Triple = (2, 4, 4)
    top_kernel: Triple = (4, 4, 4)
    top_stride: Triple = (2, 2, 2)
    ema_decay: float = 0.99
    ema_epsilon: float = 1e-5
    data_init: bool = True
    restart_dead_codes: bool = False
    dead_code_patience: int = 50
    bottom_mask_prob: float = 0.1
    causal_time: bool = False
    causal_time_padding: Literal["zeros", "replicate"] = "zeros"


class Codes(NamedTuple):
    """top: (B, Tt, Ht, Wt) int64; bottom: (B, Tb, Hb, Wb) int64."""

    top: Tensor
    bottom: Tensor


class LevelStats(NamedTuple):
    """Per-level codebook statistics of one forward pass: () float32 / () int64 scalars."""

    perplexity: Tensor
    fraction_used: Tensor
    restarts: Tensor


class VQVAEOutput(NamedTuple):
    """reconstruction: (B, 3, T, H, W) float; codes: Codes; commitment_loss: () float32, summed over levels;
    top / bottom: LevelStats."""

    reconstruction: Tensor
    codes: Codes
    commitment_loss: Tensor
    top: LevelStats
    bottom: LevelStats


def same_padding(kernel: Triple, stride: Triple, where: str) -> Triple:
    """Padding so a conv divides each axis by exactly its stride; clear error when impossible."""
    if len(kernel) != 3 or len(stride) != 3:
        raise ValueError(f"{where}: kernel {kernel} and stride {stride} must have 3 entries (t, h, w)")
    for k, s in zip(kernel, stride):
        if k < s or (k - s) % 2:
            raise ValueError(
                f"{where}: kernel {tuple(kernel)} with stride {tuple(stride)} cannot divide shapes exactly; each "
                "kernel entry must be >= its stride and differ from it by an even number (e.g. 4/2, 8/4, 3/1)"
            )
    return tuple((k - s) // 2 for k, s in zip(kernel, stride))


def _down_stage(in_ch: int, hidden: int, residual: int, layers: int, kernel: Triple, stride: Triple, where: str,
                conv: Callable[..., nn.Conv3d] = nn.Conv3d):
    return nn.Sequential(
        conv(in_ch, hidden, kernel, stride, same_padding(kernel, stride, where)),
        nn.ReLU(),
        conv(hidden, hidden, 3, padding=1),
        residual_stack(hidden, residual, layers, dims=3, conv=conv),
        nn.ReLU(),
    )


def _up_stage(in_ch: int, hidden: int, residual: int, layers: int, out_ch: int, kernel: Triple, stride: Triple):
    return nn.Sequential(
        nn.Conv3d(in_ch, hidden, 3, padding=1),
        residual_stack(hidden, residual, layers, dims=3),
        nn.ReLU(),
        nn.ConvTranspose3d(hidden, out_ch, kernel, stride, same_padding(kernel, stride, "upsampling")),
    )


def bottom_keep_mask(batch_size: int, prob: float, device: torch.device | str) -> Tensor:
    """(B,) bool: True for the clips whose bottom latents stay, each masked independently with probability `prob`."""
    return torch.rand(batch_size, device=device) >= prob


class VQVAE(nn.Module):
    """Two-level video VQ-VAE. Video in/out: (B, 3, T, H, W) float in [-1, 1]."""

    def __init__(self, config: VQVAEConfig = VQVAEConfig()):
        super().__init__()
        self.config = config
        self.bottom_kernel, self.bottom_stride = tuple(config.bottom_kernel), tuple(config.bottom_stride)
        self.top_kernel, self.top_stride = tuple(config.top_kernel), tuple(config.top_stride)
        self.num_top_codes, self.num_bottom_codes = config.num_top_codes, config.num_bottom_codes
        self.code_dim, self.bottom_mask_prob = config.code_dim, config.bottom_mask_prob
        self.is_frozen = False
        hidden = config.hidden_channels
        widths = (hidden, config.residual_channels, config.num_residual_layers)
        encoder_conv = (partial(TimeCausalConv3d, time_padding=config.causal_time_padding) if config.causal_time
                        else nn.Conv3d)
        self.bottom_encoder = _down_stage(
            config.in_channels, *widths, self.bottom_kernel, self.bottom_stride, "bottom stage", encoder_conv
        )
        self.top_encoder = _down_stage(hidden, *widths, self.top_kernel, self.top_stride, "top stage", encoder_conv)
        self.bottom_to_code = nn.Conv3d(hidden, config.code_dim, 1)
        self.top_to_code = nn.Conv3d(hidden, config.code_dim, 1)
        quantizer_args = dict(
            code_dim=config.code_dim, decay=config.ema_decay, epsilon=config.ema_epsilon, data_init=config.data_init,
            restart_dead_codes=config.restart_dead_codes, dead_code_patience=config.dead_code_patience,
        )
        self.top_quantizer = EMAVectorQuantizer(config.num_top_codes, **quantizer_args)
        self.bottom_quantizer = EMAVectorQuantizer(config.num_bottom_codes, **quantizer_args)
        self.top_upsampler = _up_stage(config.code_dim, *widths, config.code_dim, self.top_kernel, self.top_stride)
        self.decoder = _up_stage(
            2 * config.code_dim, *widths, config.in_channels, self.bottom_kernel, self.bottom_stride
        )

    # ----- shapes ----------------------------------------------------------------------------------
    def latent_shapes(self, num_frames: int, height: int, width: int) -> tuple[Triple, Triple]:
        """(top_shape, bottom_shape) as (T', H', W') for a clip of that size; raises if strides do not divide."""
        clip = (num_frames, height, width)
        total_stride = tuple(b * t for b, t in zip(self.bottom_stride, self.top_stride))
        if any(size % s or size < s for size, s in zip(clip, total_stride)):
            raise ValueError(
                f"clip (frames, height, width) {clip} is not divisible by the total stride {total_stride} = "
                f"bottom_stride {self.bottom_stride} x top_stride {self.top_stride}: choose num_frames/resolution "
                "that are multiples of it, or change the strides in the model config"
            )
        bottom = tuple(size // s for size, s in zip(clip, self.bottom_stride))
        return tuple(size // s for size, s in zip(bottom, self.top_stride)), bottom

    def _check_video(self, video: Tensor) -> None:
        if video.dim() != 5 or video.shape[1] != self.decoder[-1].out_channels:
            raise ValueError(f"video must be (B, 3, T, H, W), got {tuple(video.shape)}")
        self.latent_shapes(*video.shape[2:])

    # ----- public API ------------------------------------------------------------------------------
    def _latents(self, video: Tensor) -> tuple[Tensor, Tensor]:
        """video (B,3,T,H,W) -> pre-quantization latents top (B,D,Tt,Ht,Wt), bottom (B,D,Tb,Hb,Wb)."""
        self._check_video(video)
        bottom_features = self.bottom_encoder(video)  # (B, hidden, Tb, Hb, Wb)
        top_features = self.top_encoder(bottom_features)  # (B, hidden, Tt, Ht, Wt)
        return self.top_to_code(top_features), self.bottom_to_code(bottom_features)

    def encode(self, video: Tensor) -> Codes:
        """video: (B, 3, T, H, W) float in [-1, 1] -> Codes (int64). Never updates the codebooks."""
        top_latents, bottom_latents = self._latents(video)
        return Codes(self.top_quantizer.nearest_codes(top_latents), self.bottom_quantizer.nearest_codes(bottom_latents))

    def decode_codes(self, top_codes: Tensor, bottom_codes: Tensor) -> Tensor:
        """top_codes: (B, Tt, Ht, Wt) int64, bottom_codes: (B, Tb, Hb, Wb) int64 -> video (B, 3, T, H, W)."""
        return self._decode(self.top_quantizer.embed(top_codes), self.bottom_quantizer.embed(bottom_codes))

    def decode_top_only(self, top_codes: Tensor) -> Tensor:
        """top_codes (B, Tt, Ht, Wt) int64 → video (B, 3, T, H, W) decoded with the bottom latents masked (zeros),
        as in training's bottom masking: what the top level alone carries."""
        top_quantized = self.top_quantizer.embed(top_codes)
        bottom_shape = [size * stride for size, stride in zip(top_codes.shape[1:], self.top_stride)]
        bottom_zeros = top_quantized.new_zeros(top_quantized.shape[0], self.code_dim, *bottom_shape)
        return self._decode(top_quantized, bottom_zeros)

    def reconstruct(self, video: Tensor) -> Tensor:
        """video: (B, 3, T, H, W) -> reconstruction, same shape, through the codes (no masking)."""
        return self.decode_codes(*self.encode(video))

    def _decode(self, top_quantized: Tensor, bottom_quantized: Tensor) -> Tensor:
        """top (B,D,Tt,Ht,Wt), bottom (B,D,Tb,Hb,Wb) code vectors -> video (B, 3, T, H, W)."""
        top_upsampled = self.top_upsampler(top_quantized)  # (B, D, Tb, Hb, Wb)
        return self.decoder(torch.cat([top_upsampled, bottom_quantized.to(top_upsampled.dtype)], dim=1))

    def forward(self, video: Tensor, bottom_mask_prob: float | None = None) -> VQVAEOutput:
        """video: (B, 3, T, H, W) -> VQVAEOutput. In training: EMA updates and random bottom masking, each clip's
        bottom latents zeroed with probability `bottom_mask_prob` (None: the config's)."""
        top_latents, bottom_latents = self._latents(video)
        top: QuantizerOutput = self.top_quantizer(top_latents)
        bottom: QuantizerOutput = self.bottom_quantizer(bottom_latents)
        bottom_quantized = bottom.quantized
        prob = self.bottom_mask_prob if bottom_mask_prob is None else bottom_mask_prob
        if self.training and prob > 0:
            keep = bottom_keep_mask(video.shape[0], prob, video.device)
            bottom_quantized = bottom_quantized * keep[:, None, None, None, None].to(bottom_quantized.dtype)
        reconstruction = self._decode(top.quantized, bottom_quantized)
        return VQVAEOutput(
            reconstruction,
            Codes(top.codes, bottom.codes),
            top.commitment_loss + bottom.commitment_loss,
            LevelStats(top.perplexity, top.fraction_used, top.restarts),
            LevelStats(bottom.perplexity, bottom.fraction_used, bottom.restarts),
        )

    # ----- frozen use ------------------------------------------------------------------------------
    def freeze(self) -> "VQVAE":
        """eval() + requires_grad_(False), and stays in eval when a parent module calls .train()."""
        self.is_frozen = True
        self.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True) -> "VQVAE":
        # Lightning puts children back into train mode each epoch; a frozen VQ-VAE must not update its EMA.
        return super().train(mode and not self.is_frozen)


def encode_given_frames(vqvae: VQVAE, video: Tensor, num_given_frames: int = NUM_GIVEN_FRAMES) -> Codes:
    """THE encoding of the conditioning frames on their own (cache and prediction both call this).

    video: (B, 3, T, H, W) float in [-1, 1] with T >= num_given_frames -> Codes of
    video[:, :, :num_given_frames]; paper scale: top (B, 1, 32, 32), bottom (B, 2, 64, 64)."""
    if video.dim() != 5 or video.shape[2] < num_given_frames:
        raise ValueError(f"video must be (B, 3, T>={num_given_frames}, H, W), got {tuple(video.shape)}")
    return vqvae.encode(video[:, :, :num_given_frames])
