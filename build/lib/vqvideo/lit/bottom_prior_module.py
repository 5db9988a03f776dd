"""Training stage 3: the bottom prior (paper §3.2, Tables 4 and 8) on cached codes.

Each batch from `CodesDataModule(target="bottom")` holds spliced code volumes and, per sample, the bottom slice
to learn (`slice_index` >= the number of given bottom slices, drawn by the data module). One teacher-forced
pass gives that slice's logits.
"""

from __future__ import annotations

import torch

from vqvideo.cache.manifest import CodeSpec
from vqvideo.lit.checkpoints import load_stage
from vqvideo.lit.hparams import as_config
from vqvideo.lit.optimization import OptimizationConfig
from vqvideo.lit.prior_module import PriorModule
from vqvideo.models.bottom_prior import BottomPrior, BottomPriorConfig


class BottomPriorModule(PriorModule):
    """Wraps one `BottomPrior` (`.prior`).

    prior: the architecture (Tables 4 and 8). code_spec: the code cache's latent facts (linked by the CLI).
    optimization: AdamW and its schedule.
    """

    def __init__(
        self,
        prior: BottomPriorConfig = BottomPriorConfig(),
        code_spec: CodeSpec | None = None,
        optimization: OptimizationConfig = OptimizationConfig(),
    ) -> None:
        prior = as_config(BottomPriorConfig, prior)
        super().__init__(prior, code_spec, optimization, "num_bottom_codes")
        spec = self.code_spec
        self.prior = BottomPrior(prior, spec.num_top_codes, spec.num_bottom_codes, spec.top_to_bottom_stride)

    def logits_and_target(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        bottom_codes, slice_index = batch["bottom_codes"], batch["slice_index"]
        logits = self.prior(bottom_codes, batch["top_codes"], slice_index)  # (B, K, Hb, Wb)
        return logits, bottom_codes[torch.arange(len(slice_index), device=slice_index.device), slice_index]

    def example_inputs(self, batch_size: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(bottom_codes (B, Tb, Hb, Wb), top_codes (B, Tt, Ht, Wt), slice_index (B,)) int64: one forward pass."""
        spec = self.code_spec
        slice_index = self._zeros(batch_size, ()) + spec.given_bottom_shape[0]
        return self._zeros(batch_size, spec.bottom_shape), self._zeros(batch_size, spec.top_shape), slice_index

    def describe_info(self) -> dict:
        spec = self.code_spec
        return {
            "top_shape": list(spec.top_shape),
            "bottom_shape": list(spec.bottom_shape),
            "window": self.prior.window,
            "attention_after_layers": [index + 1 for index in self.prior.pixelcnn.attention_after],
            "positions_per_slice": spec.bottom_shape[1] * spec.bottom_shape[2],
        }


def load_bottom_prior(checkpoint_path: str) -> BottomPrior:
    """The trained `BottomPrior` of a checkpoint, frozen (eval mode, no gradients)."""
    return load_stage(BottomPriorModule, checkpoint_path).prior
