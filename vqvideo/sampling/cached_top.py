"""Exact cached incremental sampling of the top prior (issue 8): the `cached` sampler's top half.

A causal network never changes a finished activation, so generating position p needs only p's own new
activations. For a volume being generated (`TopPriorCache`), with every stream kept in a preallocated,
zero-padded, channels-last volume per layer:

- conditioning stack: once per volume; its per-layer projections once per row;
- vertical stacks (rows above / past slices only): once per row, for the whole row (`start_row`);
- horizontal stacks: the taps into past slices, the vertical → horizontal link and the conditioning are
  summed once per row; per position only the present-row taps (columns to the left and the current one)
  are applied (`position_logits`);
- attention: keys/values of each position written once into a preallocated `KeyValueCache`, the new
  query attends to the cached prefix.

Per position the Python work is constant (a few small matmuls per layer); only the attention kernels
grow with the prefix. Logits equal the teacher-forced `TopPrior.logits` to float rounding and, with the
uniforms drawn up front in the naive sampler's layout, codes are bit-identical to the naive sampler's
(tests/test_top_prior_cached.py). Works on any device the prior is on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

from vqvideo.models.pixelcnn import CausalMaskedConv3d, GatedLayer3d
from vqvideo.models.top_prior import TopPrior, sinusoidal_positions
from vqvideo.sampling.base import SamplingOptions, pick_codes
from vqvideo.sampling.naive import sampling_uniforms


def _gate_last(pre_activation: torch.Tensor) -> torch.Tensor:
    """`gate` on channels-last features: (..., 2C) → (..., C)."""
    content, gate_logits = pre_activation.chunk(2, dim=-1)
    return torch.tanh(content) * torch.sigmoid(gate_logits)


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
    """One `GatedLayer3d` evaluated incrementally: vertical stream per row, horizontal stream per position.

    Weights are masked, flattened and transposed once, so a position costs two small matmuls and the gate.
    """

    def __init__(self, layer: GatedLayer3d) -> None:
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
        self.residual_channels = present.shape[0] // 2

    def vertical_row(self, vertical_row: torch.Tensor, vertical: torch.Tensor, cond_row: torch.Tensor, t: int, y: int):
        """Next vertical stream's row y of slice t: (B, W, C). vertical: (B, T', H', W', C) padded input stream,
        whose row y is vertical_row (B, W, C) (the residual); cond_row (B, W, C_cond)."""
        pre = self.vertical_conv(vertical, t, y) + F.linear(cond_row, self.vertical_cond)
        return vertical_row + F.linear(_gate_last(pre), *self.vertical_out)

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
        residual = self.residual_channels
        gated = torch.tanh(pre[:, :residual]) * torch.sigmoid(pre[:, residual:])
        return torch.add(torch.addmm(current, gated, self.horizontal_out_t), self.horizontal_out_bias, out=out)


class TopPriorCache:
    """The activations of one top volume being generated, and the step functions that extend them.

    prior: a `TopPrior` in eval mode. cond_features: (B, C_cond, T, H, W) from `prior.condition`.
    Use per row (t, y): `start_row(t, y)`, then per column x: `position_logits(x)` → (B, K) and
    `write_codes(x, codes (B,) int64)`. Rows and columns must be visited in generation order.
    """

    def __init__(self, prior: TopPrior, cond_features: torch.Tensor) -> None:
        if prior.training:
            raise ValueError("cached sampling needs the prior in eval mode (dropout off): call prior.eval()")
        batch_size, _, num_slices, height, width = cond_features.shape
        kt, kh, kw = prior.vertical_input.kernel_size
        self.pad_t, self.pad_y, self.pad_x = kt - 1, kh // 2, kw // 2
        self.prior, self.width, self.height = prior, width, height
        shape = (batch_size, num_slices + self.pad_t, height + 2 * self.pad_y, width + 2 * self.pad_x, prior.channels)
        self.embedded = cond_features.new_zeros(shape)
        self.vertical = [cond_features.new_zeros(shape) for _ in prior.layers]  # input stream of each layer
        self.horizontal = [cond_features.new_zeros(shape) for _ in prior.layers]
        self.cond = rearrange(cond_features, "b c t h w -> b t h w c")
        self.layers = [_GatedLayerSteps(layer) for layer in prior.layers]
        self.vertical_input = _RowConv(prior.vertical_input, slice(None), with_bias=True)
        self.horizontal_input_past = _RowConv(prior.horizontal_input, slice(0, -1), with_bias=False)
        self.num_input_taps = kw // 2  # mask A: columns left of x only
        present = prior.horizontal_input.masked_weight()[:, :, -1, 0, : self.num_input_taps]
        self.input_present_t = rearrange(present, "o i k -> (k i) o")
        self.input_link = prior.input_link.weight.flatten(1)
        self.head = [_linear_of(prior.output_head[1]), _linear_of(prior.output_head[3])]
        device, dtype = cond_features.device, cond_features.dtype
        self.positions = sinusoidal_positions(num_slices, height, width, prior.channels, device, dtype)  # (N, C)
        self.attention: dict[int, tuple] = {}
        for index in range(len(prior.layers)):
            block = prior.attention_after(index)
            if block is not None:
                num_positions = num_slices * height * width
                cache = block.attention.new_cache(batch_size, num_positions, cond_features.device, cond_features.dtype)
                self.attention[index] = (block, cache)
        # embedding of the code before the next position (the attention's shifted input): (B, C)
        self.previous_embedding = cond_features.new_zeros(batch_size, prior.channels)
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
        base = F.linear(vertical, self.input_link) + self.horizontal_input_past(self.embedded, t, y + self.pad_y)
        self.row_bases = [(base + self.prior.horizontal_input.bias).transpose(0, 1).contiguous()]
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
        embedding = self.prior.code_embedding(codes)  # (B, C)
        self.rows[0][:, x + self.pad_x] = embedding
        self.previous_embedding = embedding


@torch.no_grad()
def teacher_forced_logits(prior: TopPrior, target_top: torch.Tensor, cond_features: torch.Tensor) -> torch.Tensor:
    """The cached path fed the true codes: target_top (B, Tp, Ht, Wt) int64 → logits (B, K, Tp, Ht, Wt),
    equal to `prior.logits(target_top, cond_features)` up to float rounding (the exactness test)."""
    cache = TopPriorCache(prior, cond_features)
    num_slices, height, width = target_top.shape[1:]
    logits = cond_features.new_zeros(target_top.shape[0], prior.num_codes, num_slices, height, width)
    for t in range(num_slices):
        for y in range(height):
            cache.start_row(t, y)
            for x in range(width):
                logits[:, :, t, y, x] = cache.position_logits(x)
                cache.write_codes(x, target_top[:, t, y, x])
    return logits


@torch.no_grad()
def sample_top(
    prior: TopPrior,
    cond_top: torch.Tensor,
    cond_bottom: torch.Tensor,
    num_slices: int,
    options: SamplingOptions,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """The `Sampler.sample_top` of the cached sampler: cond_top (B, Tc, Ht, Wt) int64, cond_bottom
    (B, Tcb, Hb, Wb) int64 → future top codes (B, num_slices, Ht, Wt) int64, bit-identical to the naive
    sampler's for the same generator state."""
    batch_size, _, height, width = cond_top.shape
    uniforms = sampling_uniforms(batch_size, num_slices, height, width, generator, cond_top.device)
    cache = TopPriorCache(prior, prior.condition(cond_top, cond_bottom, num_slices))
    codes = cond_top.new_zeros((batch_size, num_slices, height, width))
    for t in range(num_slices):
        for y in range(height):
            cache.start_row(t, y)
            for x in range(width):
                chosen = pick_codes(cache.position_logits(x), uniforms[:, t, y, x], options)
                codes[:, t, y, x] = chosen
                cache.write_codes(x, chosen)
    return codes
