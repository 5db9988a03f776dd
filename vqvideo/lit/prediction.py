"""The three trained stages, loaded for prediction and evaluation, and what their checkpoints say about input clips.

The clip length and resolution are the VQ-VAE's (recorded from its DataModule at training), the frame stride and
validation split its DataModule's, the number of given frames the code cache's (recorded in the priors'
`code_spec`); nothing is re-typed on the command line. Priors trained on another VQ-VAE's codes are refused.
"""

from __future__ import annotations

import torch

from vqvideo.cache.manifest import CodeSpec
from vqvideo.data.inputs import InputSpec
from vqvideo.lit.checkpoints import CheckpointError, read_checkpoint
from vqvideo.sampling.pipeline import PredictionModels


def load_prediction_models(vqvae: str, top: str, bottom: str, device: torch.device | str = "cpu") -> PredictionModels:
    """The frozen VQ-VAE, top prior and bottom prior of three checkpoints, in eval mode on `device`, after checking
    that the priors were trained on the codes of this VQ-VAE's clips."""
    from vqvideo.lit.bottom_prior_module import load_bottom_prior
    from vqvideo.lit.top_prior_module import load_top_prior
    from vqvideo.lit.vqvae_module import load_vqvae

    models = PredictionModels(load_vqvae(vqvae), load_top_prior(top), load_bottom_prior(bottom))
    spec = input_spec(vqvae, top)
    check_latent_facts(spec, models.vqvae, [top, bottom])
    return PredictionModels(*(model.to(device).eval() for model in models))


def prior_code_spec(path: str) -> CodeSpec:
    """The code cache's latent facts a prior checkpoint was trained on."""
    hparams = read_checkpoint(path).get("hyper_parameters") or {}
    if "code_spec" not in hparams:
        raise CheckpointError(f"{path} records no code_spec: pass a prior checkpoint written by `vqvideo fit`")
    return CodeSpec.from_dict(hparams["code_spec"])


def input_spec(vqvae_path: str, top_path: str | None) -> InputSpec:
    """How input clips are made for these models: the VQ-VAE's training clips, the top prior's given frames (0
    without a top prior: reconstruction only)."""
    checkpoint = read_checkpoint(vqvae_path)
    clip_shape = (checkpoint.get("hyper_parameters") or {}).get("clip_shape")
    data = checkpoint.get("datamodule_hyper_parameters") or {}
    if clip_shape is None:
        raise CheckpointError(
            f"checkpoint {vqvae_path} records no clip_shape: pass a VQ-VAE checkpoint written by "
            "`vqvideo fit --config experiments/<exp>/vqvae.yaml`"
        )
    num_frames, height, _ = clip_shape
    return InputSpec(int(num_frames), int(height), int(data.get("frame_stride", 1)), data.get("target_fps"),
                     float(data.get("val_fraction", 0.2)),
                     0 if top_path is None else prior_code_spec(top_path).num_given_frames)


def check_latent_facts(spec: InputSpec, vqvae: torch.nn.Module, prior_paths: list[str]) -> None:
    """The priors must have been trained on the codes this VQ-VAE gives for the spec's clips."""
    top_shape, bottom_shape = vqvae.latent_shapes(spec.num_frames, spec.resolution, spec.resolution)
    expected = {"top_shape": tuple(top_shape), "bottom_shape": tuple(bottom_shape),
                "num_top_codes": vqvae.num_top_codes, "num_bottom_codes": vqvae.num_bottom_codes}
    for path in prior_paths:
        facts = prior_code_spec(path)
        for key, value in expected.items():
            if getattr(facts, key) != value:
                raise CheckpointError(
                    f"{path} was trained on {key} {getattr(facts, key)}, but the VQ-VAE gives {value} for "
                    f"{spec.num_frames}x{spec.resolution}x{spec.resolution} clips: pass the priors trained on this "
                    "VQ-VAE's code cache"
                )
