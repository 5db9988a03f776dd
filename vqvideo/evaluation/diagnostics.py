"""The eval's prediction diagnostics (issue 23 item 4; docs/prediction-quality.md): why samples fall short of the
reconstruction ceiling. One story in four steps, each per clip then aggregated:

1. `slice_bits` (in the eval's predict step): each prior's teacher-forced bits per code, future slice by future
   slice, with the clip's own given frames and with them displaced by half the frame (a prior that uses its
   conditioning spends more bits when its given frames are wrong).
2. `vqvideo.evaluation.records.diagnostic_scores` (in the clip's record): code stability in time (codes changing between consecutive slices,
   over all positions and where the pixels barely change), given-frames-alone vs in-clip agreement per given slice,
   each sample's per-frame PSNR against the reconstruction, and the samples' error split into the prior's spread
   and its bias (`vqvideo.metrics.sample_spread`).
3. `diagnostics_section` (report.json, under "diagnostics").
4. `vqvideo.evaluation.tables.diagnostics_tables` (report.md and index.html).
"""

from __future__ import annotations

import numpy as np
import torch

from vqvideo.evaluation.records import LEVELS
from vqvideo.metrics.code_stability import CodeChanges, bits_per_slice, displaced
from vqvideo.metrics.frame_quality import PSNR_CAP
from vqvideo.metrics.sample_spread import mse_to_psnr
from vqvideo.models.vqvae import Codes

STABILITY_FIELDS = CodeChanges._fields


@torch.no_grad()
def slice_bits(top_prior: torch.nn.Module, bottom_prior: torch.nn.Module, codes: Codes,
               given: Codes) -> dict[str, torch.Tensor]:
    """codes: the clips' whole-window codes, top (B, Tt, Ht, Wt) / bottom (B, Tb, Hb, Wb) int64; given: the given
    frames encoded alone (B, Tg, ...) / (B, Tgb, ...). → '<level>' and '<level>_swapped' (B, future slices) float64
    bits/code, teacher-forced as in training (given slices spliced in front); swapped: every clip's given codes
    `displaced` (not another clip's: those would depend on how the clips are batched)."""
    num_top, num_bottom = given.top.shape[1], given.bottom.shape[1]
    target_top = codes.top[:, num_top:]
    bits = {}
    for suffix, swap in (("", False), ("_swapped", True)):
        given_top, given_bottom = (displaced(given.top), displaced(given.bottom)) if swap else (given.top, given.bottom)
        top = torch.cat([given_top, target_top], dim=1)  # (B, Tt, Ht, Wt)
        bottom = torch.cat([given_bottom, codes.bottom[:, num_bottom:]], dim=1)  # (B, Tb, Hb, Wb)
        bits[f"top{suffix}"] = bits_per_slice(top_prior(target_top, given_top, given_bottom), target_top)
        per_slice = []
        for index in range(num_bottom, bottom.shape[1]):
            slice_index = torch.full((bottom.shape[0],), index, dtype=torch.long, device=bottom.device)
            logits = bottom_prior(bottom, top, slice_index)[:, :, None]  # (B, K, 1, Hb, Wb)
            per_slice.append(bits_per_slice(logits, bottom[:, index:index + 1]))
        bits[f"bottom{suffix}"] = torch.cat(per_slice, dim=1)
    return bits


def _stability(records: list[dict], level: str) -> dict:
    total = {name: np.sum([record[f"stability.{level}_{name}"] for record in records], axis=0)
             for name in STABILITY_FIELDS}
    changes = CodeChanges(*(torch.as_tensor(total[name]) for name in STABILITY_FIELDS))
    sampled = np.sum([record[f"stability.sample_{level}_changed"].sum(axis=0) for record in records], axis=0)
    sampled_positions = total["positions"] * records[0][f"stability.sample_{level}_changed"].shape[0]
    return {"changed_share": changes.share(), "changed_share_per_step": changes.share_per_step(),
            "still_changed_share": changes.still_share(),
            "still_fraction": float(total["still_positions"].sum() / total["positions"].sum()),
            "sampled_changed_share": float(sampled.sum() / sampled_positions.sum()),
            "sampled_changed_share_per_step": (sampled / sampled_positions).tolist(),
            "given_alone_agreement_per_slice": np.mean(
                [record[f"stability.{level}_given_agreement"] for record in records], axis=0).tolist()}


def diagnostics_section(records: list[dict]) -> dict:
    """report.json "diagnostics": per level code stability and per-slice bits own vs swapped (means over clips), the
    samples' per-frame PSNR against the reconstruction (mean over clips and samples), and the per-frame PSNR against
    the ground truth of the given codes copied forward (the code-level copy-last; first window, mean over clips)."""
    section = {"still_levels": "positions whose pixels change by < 3 grey levels (mean |Δ|) between two slices"}
    for level in LEVELS:
        per_slice = lambda key: np.nanmean(np.stack([record[key] for record in records]), axis=0).tolist()  # noqa: E731
        section[level] = {"stability": _stability(records, level),
                          "bits_per_slice": per_slice(f"bits.{level}_per_slice"),
                          "bits_per_slice_swapped": per_slice(f"bits.{level}_per_slice_swapped")}
    versus = np.minimum(np.stack([record["psnr.sample_vs_reconstruction"] for record in records]), PSNR_CAP)
    section["sample_vs_reconstruction_psnr_per_frame"] = versus.mean(axis=(0, 1)).tolist()  # (N,)
    copied = np.minimum(np.stack([record["psnr.copied_codes"] for record in records]), PSNR_CAP)
    section["copied_codes_psnr_per_frame"] = copied.mean(axis=0).tolist()  # (Tc - given,)
    section["sample_spread"] = sample_spread_section(records)
    return section


def _listed(values: np.ndarray) -> list[float | None]:
    return [float(value) if np.isfinite(value) else None for value in values]


def sample_spread_section(records: list[dict]) -> dict | None:
    """Per frame (all N), from the mean squared errors over clips: the samples' PSNR against each target, the
    estimated PSNR of the prior's pixel mean (error minus spread), the spread's own PSNR and bias ÷ spread (1 for a
    calibrated prior). None with one sample per clip (no spread to measure)."""
    variance = np.mean([record["spread.variance"] for record in records], axis=0)  # (N,)
    if np.isnan(variance).any():
        return None
    section = {"spread_psnr": _listed(mse_to_psnr(variance))}
    for target in ("truth", "reconstruction"):
        error = np.mean([record[f"spread.error_vs_{target}"] for record in records], axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = (error - variance) / variance
        section[target] = {"samples_psnr": _listed(mse_to_psnr(error)),
                           "mean_psnr": _listed(mse_to_psnr(error - variance)),
                           "bias_to_spread": _listed(ratio)}
    return section
