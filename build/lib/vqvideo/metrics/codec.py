"""The compression baseline: x264 (PyAV's libx264, preset veryslow, tune psnr) at the VQ-VAE's bit budget.

The VQ-VAE stores a clip in its two code grids, `num_codes_top * log2(K_top) + num_codes_bottom * log2(K_bot)`
bits (§2.1: over 98% fewer bits than the pixels). A classical codec given the same bits per clip says how good
that compression is as compression. The constant QP is searched per clip: the smallest QP (best quality) whose
coded frames fit the budget.

Bits counted: the bytes of the coded-slice NAL units (the frames' data), times 8. Not counted: the stream's
headers (SPS/PPS parameter sets, x264's ~600-byte version SEI, Annex-B start codes) and any container; a file
holding this stream is larger. x264 codes 4:2:0 YUV (BT.601, limited range): the RGB -> YUV -> RGB round trip
alone caps PSNR, whatever the budget.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import NamedTuple, Sequence

import av
import numpy as np

from vqvideo.metrics.frame_quality import per_frame_psnr

MAX_QP = 51
X264_OPTIONS = {"preset": "veryslow", "tune": "psnr"}
_SLICE_NAL_TYPES = {1, 2, 3, 4, 5}  # coded slices (non-IDR, partitions A-C, IDR)


class CodecResult(NamedTuple):
    """One clip through x264 at a bit budget.

    psnr: dB, mean of per-frame PSNRs of the decoded clip (as `frame_quality` scores reconstructions);
    bits: coded-slice bits at `qp` (headers excluded, see the module docstring); header_bits: the excluded
    bits; budget_bits: the target; fits: bits <= budget_bits (False when even QP 51 is over budget: then qp is
    51 and psnr/bits are QP 51's); qp: x264's constant QP; decoded: (T, H, W, 3) uint8."""

    psnr: float
    bits: int
    header_bits: int
    budget_bits: float
    fits: bool
    qp: int
    decoded: np.ndarray


def code_budget_bits(grid_shapes: Sequence[Sequence[int]], num_codes: Sequence[int]) -> float:
    """Bits of a clip's code grids: sum over levels of (codes in the grid) x log2(codebook size).

    grid_shapes: per level, the code grid's shape without batch, e.g. ((4, 8, 8), (8, 16, 16)) for top and
    bottom; num_codes: per level, the codebook size (e.g. (512, 512))."""
    if len(grid_shapes) != len(num_codes):
        raise ValueError(f"one codebook size per grid: got {len(grid_shapes)} grids and {len(num_codes)} sizes")
    return sum(math.prod(shape) * math.log2(size) for shape, size in zip(grid_shapes, num_codes))


def _nal_units(packet: bytes) -> list[bytes]:
    # Annex B: emulation prevention keeps 00 00 01 out of NAL payloads; a NAL never ends in a 00 byte, so
    # trailing zeros belong to the next (4-byte) start code
    return [unit.rstrip(b"\x00") for unit in packet.split(b"\x00\x00\x01") if unit.rstrip(b"\x00")]


def _slice_and_header_bits(packets: list[bytes]) -> tuple[int, int]:
    total = sum(len(packet) for packet in packets) * 8
    slices = sum(len(unit) for packet in packets for unit in _nal_units(packet) if unit[0] & 0x1F in _SLICE_NAL_TYPES)
    return slices * 8, total - slices * 8


def _encode(clip: np.ndarray, qp: int) -> list[bytes]:
    """clip: (T, H, W, 3) uint8 with even H, W -> the H.264 packets (Annex B) at constant `qp`."""
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = clip.shape[2], clip.shape[1], "yuv420p"
    encoder.time_base, encoder.framerate = Fraction(1, 25), Fraction(25)
    encoder.thread_count = 1  # tiny frames: threads only add overhead; one thread is also deterministic
    encoder.options = {**X264_OPTIONS, "qp": str(qp)}
    packets = []
    for index, array in enumerate(clip):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24").reformat(format="yuv420p")
        frame.pts = index
        packets += encoder.encode(frame)
    packets += encoder.encode(None)
    return [bytes(packet) for packet in packets]


def _decode(packets: list[bytes]) -> np.ndarray:
    decoder = av.CodecContext.create("h264", "r")
    frames = []
    for data in [*packets, None]:
        for frame in decoder.decode(av.Packet(data) if data is not None else None):
            frames.append(frame.to_ndarray(format="rgb24"))
    return np.stack(frames)


def _check_clip(clip: np.ndarray) -> np.ndarray:
    clip = np.asarray(clip)
    if clip.dtype != np.uint8 or clip.ndim != 4 or clip.shape[-1] != 3 or clip.shape[0] < 1:
        raise ValueError(f"clip must be uint8 (T, H, W, 3), got {clip.dtype} {clip.shape}")
    return clip


def x264_at_budget(clip: np.ndarray, budget_bits: float) -> CodecResult:
    """Encode clip (T, H, W, 3) uint8 (any size; odd sizes are edge-padded to even for 4:2:0, then cropped
    back) with x264 at the smallest constant QP whose coded-slice bits fit `budget_bits`, decode it, score it.

    Binary search over QP 0..51 (bits fall as QP rises; ~7 encodes). If QP 51 is still over budget the result
    says so (fits False) instead of raising."""
    clip = _check_clip(clip)
    height, width = clip.shape[1:3]
    padded = np.pad(clip, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    encoded: dict[int, tuple[list[bytes], int, int]] = {}

    def bits_at(qp: int) -> int:
        if qp not in encoded:
            packets = _encode(padded, qp)
            encoded[qp] = (packets, *_slice_and_header_bits(packets))
        return encoded[qp][1]

    low, high = 0, MAX_QP
    if bits_at(MAX_QP) <= budget_bits:
        while low < high:
            middle = (low + high) // 2
            low, high = (low, middle) if bits_at(middle) <= budget_bits else (middle + 1, high)
    packets, bits, header_bits = encoded[high]
    decoded = _decode(packets)[:, :height, :width]
    if decoded.shape[0] != clip.shape[0]:
        raise RuntimeError(f"x264 round trip returned {decoded.shape[0]} of {clip.shape[0]} frames at QP {high}")
    psnr = float(per_frame_psnr(decoded[None], clip[None]).mean())
    return CodecResult(psnr, bits, header_bits, float(budget_bits), bits <= budget_bits, high, decoded)
