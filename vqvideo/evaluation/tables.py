"""The report's tables and protocol lines, from report.json, shared by report.md and index.html (which only differ
in markup). Every FVD cell from stand-in I3D weights carries STAND_IN_LABEL.
"""

from __future__ import annotations

import math
from typing import NamedTuple

STAND_IN_LABEL = "stand-in weights: meaningless"


class Table(NamedTuple):
    key: str  # anchor / file-safe name
    title: str
    columns: list[str]
    rows: list[list[str]]
    notes: list[str]


def _number(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def protocol_lines(report: dict) -> list[str]:
    """The protocol card as short lines: clips, sampling, scoring, FVD, checkpoints."""
    protocol, clips = report["protocol"], report["clips"]
    lines = [f"{key.replace('_', ' ')}: {value}" for key, value in protocol.items()]
    lines.append(f"clips scored: {clips['scored']} of {clips['planned']} planned"
                 + (f" ({len(clips['failed'])} unreadable, listed in report.json)" if clips["failed"] else ""))
    fvd = report["fvd"]
    if fvd["status"] == "missing":
        lines.append(f"FVD: missing — {fvd['reason']}. {fvd['how_to']}")
    else:
        card = fvd["card"]
        lines.append(f"FVD protocol: {card['feature']}; downscale: {card['downscale']}; input {card['input_range']}; "
                     f"resizing '{card['protocol']}': "
                     f"{card['resizing']}; {card['real_count']} real / {card['fake_count']} fake videos of "
                     f"{card['frames']} frames; {card['folds']} folds; seeds {card['seeds']}; I3D "
                     f"{card['weights_label']} (sha256 {card['i3d_sha256'] or '—'})")
    for name, checkpoint in report["checkpoints"].items():
        lines.append(f"{name} checkpoint: {checkpoint['path']} (sha256 {checkpoint['sha256']})")
    return lines


def frame_quality_table(report: dict) -> Table:
    section, settings = report["frame_quality"], report["protocol"]
    frames = section["frames"]
    rows = [[f"{name} — {system['description']}", _number(system["psnr"]["mean"]), _number(system["ssim"]["mean"], 4)]
            for name, system in section["systems"].items()]
    notes = ["Per-frame PSNR (dB, data range 255) and SSIM (torchmetrics: 11×11 Gaussian window, σ 1.5) of uint8 RGB "
             "frames against the ground truth, averaged over the predicted frames and the clips."]
    if section["psnr_capped_frames"]:
        notes.append(f"{section['psnr_capped_frames']} exact frames (PSNR inf) counted as 100 dB.")
    title = (f"Frame quality of the {len(frames)} predicted frames (frames {frames[0]}–{frames[-1]}), "
             f"{report['clips']['scored']} clips, {settings['samples_per_clip']} samples each")
    return Table("frame_quality", title, ["system", "PSNR (dB)", "SSIM"], rows, notes)


def _fvd_cell(result: dict, metric: str, stand_in: bool) -> str:
    text = result[metric]["text"]
    return f"{text} ({STAND_IN_LABEL})" if stand_in else text


def _ours_beside_paper(row: dict, fvd: dict, first: dict[int, dict]) -> str:
    """This eval's value for one row of the paper's Table 2 (only the Video VQ-VAE rows have one)."""
    if row["method"] != "Video VQ-VAE":
        return "—"
    if fvd["status"] != "computed":
        return f"{fvd['status']}: {fvd['reason']}"
    if row["resolution"] not in first:
        return f"— ({fvd.get('skipped_resolutions', {}).get(str(row['resolution']), 'not computed')})"
    return _fvd_cell(first[row["resolution"]], "fvd" if row["metric"] == "FVD" else "fvd_star",
                     fvd["stand_in_weights"])


def fvd_table(report: dict) -> Table:
    """FVD/FVD* of the first window beside the paper's Table 2 (and at resolutions the paper does not have)."""
    fvd, paper = report["fvd"], report["paper_table2"]
    first = {result["resolution"]: result for result in fvd.get("results", []) if result["window_start"] == 0}
    rows = [[row["method"], f"{row['resolution']}×{row['resolution']}", row["metric"],
             f"{row['mean']:.2f} ± {row['std']:.2f}", _ours_beside_paper(row, fvd, first)] for row in paper["rows"]]
    paper_resolutions = {row["resolution"] for row in paper["rows"]}
    for resolution, result in sorted(first.items()):
        if resolution not in paper_resolutions:
            rows += [["this eval's VQ-VAE", f"{resolution}×{resolution}", label, "—",
                      _fvd_cell(result, metric, fvd["stand_in_weights"])]
                     for label, metric in (("FVD", "fvd"), ("FVD*", "fvd_star"))]
    notes = [paper["source"], "FVD: real = ground-truth clips; FVD*: real = the VQ-VAE's reconstructions; fake = "
             "all samples (all 16 frames, as in the paper). Compare only numbers with the same protocol card."]
    if fvd["status"] == "missing":
        notes.append(f"FVD missing: {fvd['reason']}. {fvd['how_to']}")
    else:
        notes.append(f"I3D: {fvd['weights_label']}")
    return Table("fvd", "FVD and FVD* beside the paper's Table 2",
                 ["method", "resolution", "metric", "paper (Table 2)", "this eval"], rows, notes)


def fvd_tables(report: dict) -> list[Table]:
    """The FVD table, and FVD per window when the predictions are longer than one clip."""
    fvd = report["fvd"]
    results = fvd.get("results", [])
    if len({result["window_start"] for result in results}) < 2:
        return [fvd_table(report)]
    rows = [[f"{result['frames'][0]}–{result['frames'][1] - 1}", f"{result['resolution']} px",
             _fvd_cell(result, "fvd", fvd["stand_in_weights"]), _fvd_cell(result, "fvd_star", fvd["stand_in_weights"])]
            for result in results]
    return [fvd_table(report), Table("fvd_windows", "FVD per clip-length window of the rollout (drift)",
                                     ["frames", "resolution", "FVD", "FVD*"], rows,
                                     ["Each window: the predicted video's frames against the same frames of the "
                                      "ground truth (FVD) or of the reconstruction (FVD*)."])]


def compression_table(report: dict) -> Table:
    section = report["compression"]
    rows = [["VQ-VAE codes (top + bottom grids)", f"{section['budget_bits']:.0f}", _number(section["vqvae_psnr"])],
            ["x264 at the same budget (preset veryslow, tune psnr, QP searched per clip)",
             f"{section['x264_bits']:.0f}", _number(section["x264_psnr"])]]
    notes = [f"Bits per clip: codes × log2(codebook size) over both levels, {section['budget_percent_of_pixels']:.2f}% "
             f"of the clip's {section['pixel_bits']} raw RGB bits. Each clip's PSNR is the mean of its per-frame "
             "PSNRs over all frames of its first clip window.",
             f"x264's bits are its coded slices only: the stream headers (SPS/PPS and x264's SEI, on average "
             f"{section['x264_header_bits'] / 8:.0f} bytes per clip) are not counted; mean QP "
             f"{section['x264_qp']:.1f}."]
    if section["x264_over_budget_clips"]:
        notes.append(f"{section['x264_over_budget_clips']} clips exceed the budget even at QP 51 (scored at QP 51).")
    return Table("compression", "Compression: VQ-VAE reconstructions vs x264 at the same bits",
                 ["", "bits per clip", "PSNR (dB)"], rows, notes)


def levels_tables(report: dict) -> list[Table]:
    section = report["levels"]
    rows = []
    for level in ("top", "bottom"):
        entry = section[level]
        codes, sampled = entry["codes"], entry["sampled_codes"]
        rows.append([level, f"{codes['used']} / {codes['num_codes']}", _number(codes["perplexity"], 1),
                     f"{sampled['used']} / {sampled['num_codes']}", _number(sampled["perplexity"], 1),
                     _number(entry["prior_bits_per_code"], 3), _number(entry["unigram_bits_per_code"], 3),
                     _number(entry["uniform_bits_per_code"], 3)])
    usage = Table("levels", "Per-level diagnostics on these clips",
                  ["level", "codes used", "perplexity", "sampled codes used", "sampled perplexity",
                   "prior bits/code (teacher-forced)", "unigram bits/code", "uniform bits/code"], rows,
                  ["Codes: the clips' own codes (first clip window); sampled: the samples' predicted codes. Prior "
                   "bits/code: cross-entropy of each prior on the clips' future codes given everything before them, "
                   "as in training; unigram: the entropy of those codes' histogram (a prior ignoring all context); "
                   "a useful prior is well below its unigram value."])
    verdict = ("yes: the top codes alone beat the clip's mean colour" if section["top_level_carries_content"] else
               "NO: the top codes alone decode worse than the clip's mean colour (a collapsed top level?)")
    top = Table("top_only", "Does the top level carry content?",
                ["top-only reconstruction PSNR", "mean-colour PSNR", "full reconstruction PSNR", "verdict"],
                [[_number(section["top_only_psnr"]), _number(section["mean_colour_psnr"]),
                  _number(report["compression"]["vqvae_psnr"]), verdict]],
                ["Top-only: the top codes decoded with the bottom level masked (zeros), as in training's bottom "
                 "masking; mean colour: every pixel of a clip set to its mean colour. dB, first clip window."])
    return [usage, top]


def diagnostics_tables(report: dict) -> list[Table]:
    section = report.get("diagnostics")
    if section is None:
        return []
    rows = []
    for level in ("top", "bottom"):
        stability = section[level]["stability"]
        rows.append([level, _number(100 * stability["changed_share"], 1),
                     _number(100 * stability["still_changed_share"], 1) if not math.isnan(
                         stability["still_changed_share"]) else "—",
                     _number(100 * stability["sampled_changed_share"], 1),
                     " / ".join(_number(100 * share, 0) for share in stability["changed_share_per_step"]),
                     " / ".join(_number(100 * share, 0) for share in stability["given_alone_agreement_per_slice"]),
                     " / ".join(_number(bits) for bits in section[level]["bits_per_slice"]),
                     " / ".join(_number(bits) for bits in section[level]["bits_per_slice_swapped"])])
    stability = Table("diagnostics", "Prediction diagnostics: code stability and use of the given frames",
                      ["level", "codes changing between slices %", "… where pixels barely change %",
                       "samples' codes changing %", "changing per step %", "given alone = in clip, per given slice %",
                       "bits/code per future slice (own given frames)", "… (given frames displaced by half the frame)"], rows,
                      ["Stability: the share of a level's codes that differ from the previous time slice (first "
                       "clip window), over all positions and where the pixels barely change (" +
                       section["still_levels"] + "); a stable code changes only when the picture does.",
                       "Given alone = in clip: the given frames encoded on their own (what prediction conditions "
                       "on) against the same slices of the whole clip's encoding (what the priors learned to "
                       "continue); 100% for a causal_time VQ-VAE.",
                       "Bits per future slice: teacher-forced, as in training; with the given frames' codes displaced "
                       "by half the frame they should rise if the prior uses its conditioning."])
    versus = Table("sample_vs_reconstruction", "Samples against the reconstruction, per frame (PSNR dB)",
                   [str(frame) for frame in range(len(section["sample_vs_reconstruction_psnr_per_frame"]))],
                   [[_number(value, 1) for value in section["sample_vs_reconstruction_psnr_per_frame"]]],
                   ["Each sample's frame against the VQ-VAE's reconstruction of the same frame, mean over clips and "
                    "samples; the given frames (first columns) differ only through their codes."])
    spread = sample_spread_table(section.get("sample_spread"))
    return [stability, versus, copied_codes_table(report), *([spread] if spread else [])]


def sample_spread_table(spread: dict | None) -> Table | None:
    """The samples' error split into the prior's spread and its bias, per frame (None with one sample per clip)."""
    if spread is None:
        return None
    psnr_row = lambda label, values: [label, *(_number(value, 1) for value in values)]  # noqa: E731
    rows = [psnr_row("samples vs ground truth", spread["truth"]["samples_psnr"]),
            psnr_row("the prior's pixel mean vs ground truth (estimated)", spread["truth"]["mean_psnr"]),
            psnr_row("samples vs reconstruction", spread["reconstruction"]["samples_psnr"]),
            psnr_row("the prior's pixel mean vs reconstruction (estimated)", spread["reconstruction"]["mean_psnr"]),
            psnr_row("spread: samples about their average", spread["spread_psnr"]),
            ["bias ÷ spread vs reconstruction",
             *(_number(value, 2) for value in spread["reconstruction"]["bias_to_spread"])]]
    return Table("sample_spread", "The samples' error: the prior's spread and its bias, per frame (PSNR dB)",
                 ["", *(str(frame) for frame in range(len(spread["spread_psnr"])))], rows,
                 ["From mean squared errors over clips and samples (not the mean of per-clip PSNRs, so the samples' "
                  "rows differ a little from the tables above). A sample's squared error is its prior's bias "
                  "(the pixel mean of infinitely many samples against the target) plus the spread (the samples' "
                  "variance about their average, estimated from the K samples); the pixel-mean rows are error minus "
                  "spread.",
                  "A calibrated prior, one whose target looks like one more sample, has bias = spread and samples "
                  "3 dB below its mean: the price of sampling an uncertain future. Bias ÷ spread far above 1: "
                  "samples that agree with each other more than with the target; far below 1: more spread than "
                  "error (a lower temperature would help)."])


def copied_codes_table(report: dict) -> Table:
    """The first window's predicted frames: the samples and the reconstruction beside the given codes copied
    forward, each against the ground truth."""
    copied = report["diagnostics"]["copied_codes_psnr_per_frame"]
    frames, systems = report["frame_quality"]["frames"][:len(copied)], report["frame_quality"]["systems"]
    rows = [[label, *(_number(value, 1) for value in values[:len(copied)])] for label, values in (
        ("samples (mean over K)", systems["sample_mean"]["psnr"]["per_frame"]),
        ("given codes copied forward", copied),
        ("copy-last frame", systems["copy_last"]["psnr"]["per_frame"]),
        ("reconstruction", systems["reconstruction"]["psnr"]["per_frame"]))]
    return Table("copied_codes", "The priors against copying the given codes, per predicted frame (PSNR dB)",
                 ["", *(str(frame) for frame in frames)], rows,
                 ["Given codes copied forward: the given frames' codes with each level's last given slice repeated to "
                  "the end of the first window, decoded by the VQ-VAE, against the ground truth (mean over clips). "
                  "Samples that score below it lose to a prior that only ever copies codes."])


def throughput_table(report: dict) -> Table:
    timing = report["run"]["timings"]
    rows = [["sampling", str(timing["sampled_videos"]), _number(timing["sampling_seconds"], 1),
             _number(timing["sampling_videos_per_second"], 3)]]
    if timing["feature_videos"]:
        rows.append(["I3D features", str(timing["feature_videos"]), _number(timing["feature_seconds"], 1),
                     _number(timing["feature_videos_per_second"], 3)])
    return Table("throughput", "Throughput", ["step", "videos", "seconds", "videos/s"], rows, [timing["note"]])


def all_tables(report: dict) -> list[Table]:
    return [frame_quality_table(report), *fvd_tables(report), compression_table(report), *levels_tables(report),
            *diagnostics_tables(report), throughput_table(report)]
