"""What the two prior stages share (paper §3.2): teacher-forced cross-entropy on cached codes, logged in nats
(`*/loss`) and bits per code (`*/bits_per_code`) beside the unigram baseline of the same codes
(`val/unigram_bits_per_code`, `test/unigram_bits_per_code`: what a model ignoring all context reaches at best),
AdamW with warmup-cosine, and the latent facts of the code cache (`code_spec`).

The latent facts are never typed in a YAML: the CLI links `CodesDataModule.code_spec` (read from the cache's
manifest) into the module, its hyperparameters record them, and a checkpoint rebuilds the same network. A module
given a cache whose facts differ (a resumed run or `vqvideo test` on another cache) stops with one message.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from pytorch_lightning import LightningModule

from vqvideo.cache.manifest import CodeSpec
from vqvideo.lit.hparams import as_config, plain
from vqvideo.lit.metrics import UnigramBits
from vqvideo.lit.optimization import OptimizationConfig, configure_optimization

MISSING_SPEC = (
    "{name} needs the code cache's latent facts (code_spec): train it with `vqvideo fit --config <prior YAML>` "
    "(the CLI links them from the CodesDataModule), or pass code_spec=CodesDataModule(cache_dir=...).code_spec"
)


class PriorModule(LightningModule):
    """Base of `TopPriorModule` and `BottomPriorModule`: a subclass builds `self.prior` in `__init__` and returns
    (logits (B, K, ...), target (B, ...) int64) for a batch in `logits_and_target`."""

    def __init__(self, prior_config: Any, code_spec: CodeSpec | dict | None, optimization: OptimizationConfig | dict,
                 num_codes_of_target: str) -> None:
        super().__init__()
        if code_spec is None:
            raise ValueError(MISSING_SPEC.format(name=type(self).__name__))
        self.code_spec = CodeSpec.from_dict(code_spec)
        self.optimization = as_config(OptimizationConfig, optimization)
        self.save_hyperparameters({"prior": plain(prior_config), "code_spec": self.code_spec.as_dict(),
                                   "optimization": plain(self.optimization)})
        num_codes = getattr(self.code_spec, num_codes_of_target)
        self.val_unigram_bits, self.test_unigram_bits = UnigramBits(num_codes), UnigramBits(num_codes)

    def logits_and_target(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def setup(self, stage: str) -> None:
        data_spec = getattr(getattr(self.trainer, "datamodule", None), "code_spec", None)
        if data_spec is not None and CodeSpec.from_dict(data_spec) != self.code_spec:
            raise ValueError(
                f"{type(self).__name__} was built for the latent facts {self.code_spec.as_dict()}, but the code "
                f"cache it is given has {CodeSpec.from_dict(data_spec).as_dict()}: use the cache this prior was "
                "trained on, or train a new prior on this cache"
            )

    def _shared_step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        logits, target = self.logits_and_target(batch)
        loss = F.cross_entropy(logits, target)
        if stage != "train":
            getattr(self, f"{stage}_unigram_bits").update(target)
        sync, batch_size = stage != "train", len(target)
        self.log(f"{stage}/loss", loss, prog_bar=True, sync_dist=sync, batch_size=batch_size)
        self.log(f"{stage}/bits_per_code", loss / math.log(2), sync_dist=sync, batch_size=batch_size)
        return loss

    def training_step(self, batch: dict, batch_index: int) -> torch.Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: dict, batch_index: int) -> torch.Tensor:
        return self._shared_step(batch, "val")

    def test_step(self, batch: dict, batch_index: int) -> torch.Tensor:
        return self._shared_step(batch, "test")

    def on_validation_epoch_end(self) -> None:
        self.log("val/unigram_bits_per_code", self.val_unigram_bits)

    def on_test_epoch_end(self) -> None:
        self.log("test/unigram_bits_per_code", self.test_unigram_bits)

    def configure_optimizers(self):
        return configure_optimization(self.prior.parameters(), self.optimization, self.trainer)

    # ----- describe hook (see vqvideo/lit/describe.py) ---------------------------------------------------
    @property
    def core(self) -> torch.nn.Module:
        return self.prior

    def _zeros(self, batch_size: int, shape: tuple[int, ...]) -> torch.Tensor:
        device = self.prior.pixelcnn.code_embedding.weight.device
        return torch.zeros((batch_size, *shape), dtype=torch.long, device=device)
