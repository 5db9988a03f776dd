"""Training stage 2: the top prior (paper §3.2, Tables 4–6) on cached codes.

Batches from `CodesDataModule(target="top")` hold the given frames' codes (`given_top`, `given_bottom`) and the
future top codes (`target_top`). One teacher-forced pass gives logits for every future position.
"""

from __future__ import annotations

import torch

from vqvideo.cache.manifest import CodeSpec
from vqvideo.lit.checkpoints import load_stage
from vqvideo.lit.hparams import as_config
from vqvideo.lit.optimization import OptimizationConfig
from vqvideo.lit.prior_module import PriorModule
from vqvideo.models.top_prior import TopPrior, TopPriorConfig


class TopPriorModule(PriorModule):
    """Wraps one `TopPrior` (`.prior`).

    prior: the architecture (Tables 4–6). code_spec: the code cache's latent facts (linked by the CLI; the prior
    predicts top_shape[0] - given_top_shape[0] slices). optimization: AdamW and its schedule.
    """

    def __init__(
        self,
        prior: TopPriorConfig = TopPriorConfig(),
        code_spec: CodeSpec | None = None,
        optimization: OptimizationConfig = OptimizationConfig(),
    ) -> None:
        prior = as_config(TopPriorConfig, prior)
        super().__init__(prior, code_spec, optimization, "num_top_codes")
        spec = self.code_spec
        self.prior = TopPrior(prior, spec.num_top_codes, spec.num_bottom_codes, spec.given_top_shape[0],
                              spec.given_bottom_shape[0], spec.num_future_top_slices)

    def logits_and_target(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        target = batch["target_top"]  # (B, Tp, Ht, Wt)
        return self.prior(target, batch["given_top"], batch["given_bottom"]), target

    def example_inputs(self, batch_size: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(target_top (B, Tp, Ht, Wt), given_top (B, Tg, Ht, Wt), given_bottom (B, Tgb, Hb, Wb)) int64."""
        spec = self.code_spec
        target_shape = (spec.num_future_top_slices, *spec.top_shape[1:])
        return (self._zeros(batch_size, target_shape), self._zeros(batch_size, spec.given_top_shape),
                self._zeros(batch_size, spec.given_bottom_shape))

    def describe_info(self) -> dict:
        spec = self.code_spec
        return {
            "top_shape": list(spec.top_shape),
            "given_top_shape": list(spec.given_top_shape),
            "given_bottom_shape": list(spec.given_bottom_shape),
            "predicted_shape": [spec.num_future_top_slices, *spec.top_shape[1:]],
            "attention_after_layers": [index + 1 for index in self.prior.pixelcnn.attention_after],
        }


def load_top_prior(checkpoint_path: str) -> TopPrior:
    """The trained `TopPrior` of a checkpoint, frozen (eval mode, no gradients)."""
    return load_stage(TopPriorModule, checkpoint_path).prior
