"""Exact cached incremental sampling: the `cached` sampler, for both priors (they share the `GatedPixelCNN`).

A causal network never changes a finished activation, so generating position p needs only p's own new
activations. For a volume being generated (`PixelCNNCache`: the top prior's future slices, or one bottom
slice), with every stream kept in a preallocated, zero-padded, channels-last volume per layer:

- conditioning: computed by the prior once per volume (top) or slice (bottom); its per-layer projections
  once per row;
- vertical stacks (rows above / past slices only): once per row, for the whole row (`start_row`);
- horizontal stacks: the taps into past slices, the vertical → horizontal link and the conditioning are
  summed once per row; per position only the present-row taps (columns to the left and the current one)
  are applied (`position_logits`);
- attention: keys/values of each position written once into a preallocated `KeyValueCache`, the new
  query attends to the cached prefix.

Per position the Python work is constant (a few small matmuls per layer); only the attention kernels
grow with the prefix. Logits equal the teacher-forced `GatedPixelCNN.logits` to float rounding and, with the
uniforms drawn up front in the shared layout (`sampling_uniforms`), codes are bit-identical to the naive
sampler's. Works on any device the prior is on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

from vqvideo.models.attention import sinusoidal_positions
from vqvideo.models.layers import gate
from vqvideo.models.pixelcnn import CausalMaskedConv3d, GatedLayer, GatedPixelCNN
from vqvideo.sampling.base import ChooseCode, Sampler, generation_order


def _linear_of(conv: torch.nn.Conv3d) -> tuple[torch.Tensor, torch.Tensor | None]:
    """1×1×1 conv → (weight (out, in), bias (out,) or None) for F.linear on channels-last features."""
    return conv.weight.flatten(1), conv.bias


class _RowConv:
    """Some time taps of a `CausalMaskedConv3d` applied to a whole row of a padded channels-last volume.

    Weights are masked and flattened once. time_taps: all of them, or only the past slices' (slice(0, -1)).
    """

    def __init__(self, conv: CausalMaskedConv3d, time_taps: slice, with_bias: bool) -> None:
        weight = conv.masked_weight()[:, :, time_taps]  # (out, in, kt', kh, kw)
        self.num_slices, self.num_rows, self.kernel_width = weight.shape[2:]
        self.weight = rearrange(weight, "o i t h w -> o (t h w i)")
        self.bias = conv.bias if with_bias else None

    def __call__(self, volume: torch.Tensor, t_start: int, y_start: int) -> torch.Tensor:
        """volume (B, T', H', W', C) padded; window of padded slices [t_start, +kt'), rows [y_start, +kh)
        → (B, W, out): the conv's output for every column."""
        window = volume[:, t_start : t_start + self.num_slices, y_start : y_start + self.num_rows]
        columns = rearrange(window.unfold(3, self.kernel_width, 1), "b t h x c k -> b x (t h k c)")
        return F.linear(columns, self.weight, self.bias)


class _GatedLayerSteps:
    """One `GatedLayer` evaluated incrementally: vertical stream per row, horizontal stream per position.

    Weights are masked, flattened and transposed once, so a position costs two small matmuls and the gate.
    """

    def __init__(self, layer: GatedLayer) -> None:
        self.vertical_conv = _RowConv(layer.vertical_conv, slice(None), with_bias=True)
        self.horizontal_past = _RowConv(layer.horizontal_conv, slice(0, -1), with_bias=False)
        self.num_present_taps = layer.horizontal_conv.kernel_size[2] // 2 + 1  # columns left of x, and x
        present = layer.horizontal_conv.masked_weight()[:, :, -1, 0, : self.num_present_taps]  # (2R, C, taps)
        self.present_t = rearrange(present, "o i k -> (k i) o")
        self.horizontal_bias = layer.horizontal_conv.bias
        self.vertical_cond = layer.vertical_cond.weight.flatten(1)
        self.horizontal_cond = layer.horizontal_cond.weight.flatten(1)
        self.link = layer.vertical_to_horizontal.weight.flatten(1)
        self.vertical_out = _linear_of(layer.vertical_out)
        self.horizontal_out_t = layer.horizontal_out.weight.flatten(1).t()
        self.horizontal_out_bias = layer.horizontal_out.bias

    def vertical_row(self, vertical_row: torch.Tensor, vertical: torch.Tensor, cond_row: torch.Tensor, t: int, y: int):
        """Next vertical stream's row y of slice t: (B, W, C). vertical: (B, T', H', W', C) padded input stream,
        whose row y is vertical_row (B, W, C) (the residual); cond_row (B, W, C_cond)."""
        pre = self.vertical_conv(vertical, t, y) + F.linear(cond_row, self.vertical_cond)
        return vertical_row + F.linear(gate(pre, dim=-1), *self.vertical_out)

    def horizontal_row_base(self, horizontal: torch.Tensor, next_vertical_row, cond_row, t: int, y_padded: int):
        """The part of row y's horizontal pre-activation that does not depend on row y itself: past-slice taps,
        conv bias, link from the updated vertical stream and conditioning → (W, B, 2R) (a position is a view)."""
        base = F.linear(next_vertical_row, self.link) + F.linear(cond_row, self.horizontal_cond, self.horizontal_bias)
        if self.horizontal_past.num_slices:
            base = base + self.horizontal_past(horizontal, t, y_padded)
        return base.transpose(0, 1).contiguous()

    def horizontal_position(
        self, row: torch.Tensor, current: torch.Tensor, base: torch.Tensor, x: int, out: torch.Tensor | None
    ) -> torch.Tensor:
        """Horizontal stream after this layer at column x, written into `out` (B, C) and returned.
        row: (B, W', C) padded input-stream row (holds `current` (B, C) at padded column x + taps - 1);
        base: (B, 2R) from `horizontal_row_base`."""
        pre = torch.addmm(base, row[:, x : x + self.num_present_taps].flatten(1), self.present_t)
        gated = gate(pre, dim=-1)
        return torch.add(torch.addmm(current, gated, self.horizontal_out_t), self.horizontal_out_bias, out=out)


class PixelCNNCache:
    """The activations of one volume being generated by a `GatedPixelCNN`, and the steps that extend them.

    pixelcnn: in eval mode (dropout off). cond: (B, C_cond, T, H, W) conditioning features from the prior.
    Use per row (t, y): `start_row(t, y)`, then per column x: `position_logits(x)` → (B, K) and
    `write_codes(x, codes (B,) int64)`. Rows and columns must be visited in generation order.
    """

    def __init__(self, pixelcnn: GatedPixelCNN, cond: torch.Tensor) -> None:
        if pixelcnn.training:
            raise ValueError("cached sampling needs the prior in eval mode (dropout off): call prior.eval()")
        batch_size, _, num_slices, height, width = cond.shape
        kt, kh, kw = pixelcnn.vertical_input.kernel_size
        self.pad_t, self.pad_y, self.pad_x = kt - 1, kh // 2, kw // 2
        self.pixelcnn, self.width, self.height = pixelcnn, width, height
        channels = pixelcnn.hidden_channels
        shape = (batch_size, num_slices + self.pad_t, height + 2 * self.pad_y, width + 2 * self.pad_x, channels)
        self.embedded = cond.new_zeros(shape)
        self.vertical = [cond.new_zeros(shape) for _ in pixelcnn.layers]  # input stream of each layer
        self.horizontal = [cond.new_zeros(shape) for _ in pixelcnn.layers]
        self.cond = rearrange(cond, "b c t h w -> b t h w c")
        self.layers = [_GatedLayerSteps(layer) for layer in pixelcnn.layers]
        self.vertical_input = _RowConv(pixelcnn.vertical_input, slice(None), with_bias=True)
        self.horizontal_input_past = _RowConv(pixelcnn.horizontal_input, slice(0, -1), with_bias=False)
        self.num_input_taps = kw // 2  # mask A: columns left of x only
        present = pixelcnn.horizontal_input.masked_weight()[:, :, -1, 0, : self.num_input_taps]
        self.input_present_t = rearrange(present, "o i k -> (k i) o")
        self.input_link = pixelcnn.input_link.weight.flatten(1)
        self.head = [_linear_of(pixelcnn.output_head[1]), _linear_of(pixelcnn.output_head[3])]
        self.positions = sinusoidal_positions((num_slices, height, width), channels, cond.device, cond.dtype)
        num_positions = num_slices * height * width
        self.attention = {
            index: (block, block.attention.new_cache(batch_size, num_positions, cond.device, cond.dtype))
            for index in pixelcnn.attention_after
            for block in [pixelcnn.attention_block(index)]
        }
        # embedding of the code before the next position (the attention's shifted input): (B, C)
        self.previous_embedding = cond.new_zeros(batch_size, channels)
        self.row_bases: list[torch.Tensor] = []
        self.rows: list[torch.Tensor] = []  # padded rows (B, W', C) of the current row: codes, then layer inputs
        self.row_start = 0  # flattened position of the current row's column 0

    def _row(self, volume: torch.Tensor, t: int, y: int) -> torch.Tensor:
        """Padded row y of slice t of a padded volume: (B, W', C) view."""
        return volume[:, t + self.pad_t, y + self.pad_y]

    def start_row(self, t: int, y: int) -> None:
        """Vertical streams of row y of slice t and the per-row parts of the horizontal pre-activations."""
        cond_row = self.cond[:, t, y]  # (B, W, C_cond)
        columns = slice(self.pad_x, self.pad_x + self.width)
        vertical = self.vertical_input(self.embedded, t, y)  # (B, W, C): rows above / past slices of the codes
        base = F.linear(vertical, self.input_link)
        if self.horizontal_input_past.num_slices:
            base = base + self.horizontal_input_past(self.embedded, t, y + self.pad_y)
        self.row_bases = [(base + self.pixelcnn.horizontal_input.bias).transpose(0, 1).contiguous()]
        for index, layer in enumerate(self.layers):
            self._row(self.vertical[index], t, y)[:, columns] = vertical
            next_vertical = layer.vertical_row(vertical, self.vertical[index], cond_row, t, y)
            base = layer.horizontal_row_base(self.horizontal[index], next_vertical, cond_row, t, y + self.pad_y)
            self.row_bases.append(base)
            vertical = next_vertical
        self.rows = [self._row(self.embedded, t, y)] + [self._row(volume, t, y) for volume in self.horizontal]
        self.row_start = (t * self.height + y) * self.width

    def position_logits(self, x: int) -> torch.Tensor:
        """Logits (B, K) of column x of the current row; needs every earlier code written."""
        window = self.rows[0][:, x : x + self.num_input_taps].flatten(1)
        first_out = self.rows[1][:, x + self.pad_x]
        horizontal = torch.addmm(self.row_bases[0][x], window, self.input_present_t, out=first_out)
        for index, layer in enumerate(self.layers):
            out = self.rows[index + 2][:, x + self.pad_x] if index + 2 < len(self.rows) else None
            base = self.row_bases[index + 1][x]
            horizontal = layer.horizontal_position(self.rows[index + 1], horizontal, base, x, out)
            if index in self.attention:
                horizontal = self._attend(index, horizontal, self.row_start + x, out)
        (weight_1, bias_1), (weight_2, bias_2) = self.head
        return F.linear(F.elu(F.linear(F.elu(horizontal), weight_1, bias_1)), weight_2, bias_2)

    def _attend(self, index: int, horizontal: torch.Tensor, position: int, out: torch.Tensor | None) -> torch.Tensor:
        """Residual attention block after gated layer `index` at one position: (B, C) → (B, C), into `out`."""
        block, cache = self.attention[index]
        features = horizontal + self.positions[position]  # (B, C)
        query, key_value = block.sources(features, self.previous_embedding)  # (B, C), (B, 2C)
        return torch.add(horizontal, block.attention.step_one(query, key_value, cache, position), out=out)

    def write_codes(self, x: int, codes: torch.Tensor) -> None:
        """Record the codes (B,) int64 chosen at column x of the current row."""
        embedding = self.pixelcnn.code_embedding(codes)  # (B, C)
        self.rows[0][:, x + self.pad_x] = embedding
        self.previous_embedding = embedding


class CachedSampler(Sampler):
    """Exact incremental sampling with a `PixelCNNCache` per volume: same codes as `NaiveSampler`, far faster."""

    name = "cached"

    @torch.no_grad()
    def generate(self, pixelcnn: GatedPixelCNN, cond: torch.Tensor, choose_code: ChooseCode, desc: str) -> torch.Tensor:
        """Codes (B, T, H, W) int64; cond (B, C_cond, T, H, W) float."""
        batch_size, _, num_slices, height, width = cond.shape
        cache = PixelCNNCache(pixelcnn, cond)
        codes = torch.zeros((batch_size, num_slices, height, width), dtype=torch.long, device=cond.device)
        for t, y, x in generation_order(num_slices, height, width, self.progress, desc):
            if x == 0:
                cache.start_row(t, y)
            chosen = choose_code(t, y, x, cache.position_logits(x))
            codes[:, t, y, x] = chosen
            cache.write_codes(x, chosen)
        return codes


@torch.no_grad()
def teacher_forced_logits(pixelcnn: GatedPixelCNN, codes: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
    """The cached path fed the true codes: codes (B, T, H, W) int64, cond (B, C_cond, T, H, W) → logits
    (B, K, T, H, W), equal to `pixelcnn.logits(codes, cond)` up to float rounding (exactness tests, benchmarks)."""
    logits = cond.new_zeros(codes.shape[0], pixelcnn.num_codes, *codes.shape[1:])

    def record(t: int, y: int, x: int, position_logits: torch.Tensor) -> torch.Tensor:
        logits[:, :, t, y, x] = position_logits
        return codes[:, t, y, x]

    CachedSampler().generate(pixelcnn, cond, record, "teacher forcing")
    return logits
