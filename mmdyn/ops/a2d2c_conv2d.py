"""A2D2C and A2D2C+: Adaptive Attention-Driven Dynamic Convolution.

Paper: Zhang, Wan, Miao, Deng, Xie and Long, "A2D2C: Adaptive attention-driven
dynamic convolution for local feature adaptation", Pattern Recognition 180,
113915, 2026 (Sections 3.2-3.4, Algorithms 1-2; ``docs/references.md``). The
maths lives in plain functions (:func:`sample_positions`,
:func:`mean_input_patches`, :func:`a2d2c_logits`, :func:`a2d2c_attention`,
:func:`a2d2c_fast`, :func:`a2d2c_reference`); the modules only hold parameters
and options and expose the attention (``attention``) and their MAdds
(``madds``).

With K base kernels ``W_k`` and input ``x``:

* ``F_k = W_k * x + b_k``                                 (Eq. 2, K feature maps)
* ``p̄[k, n] = mean of F_k[n] over M sampled positions``  (Eq. 3-4)
* ``π[k, n] = softmax_k(p̄[k, n] / T)``                   (Eq. 5, one set per channel n)
* A2D2C:  ``y = (Σ_k π_k ⊙ W_k) * x``                     (Eq. 6-7)
* A2D2C+: ``y = Σ_k π_k ⊙ F_k``                           (Eq. 8)

Both are the same function. ``impl='fast'`` (default) computes it with ONE
convolution: the value of ``F_k`` at a position is the dot product of ``W_k``
with the input patch under it, so ``p̄ = W_k · mean(input patches) + b_k``; we
gather only the M patches, average them, get ``p̄`` with one matmul, aggregate
the per-sample kernel and run :func:`~mmdyn.ops.batched_conv.mixed_kernel_conv2d`.
``impl='reference'`` is the paper's literal computation (K convolutions, then
a second convolution for A2D2C). Readings of the paper we had to choose are
listed in ``docs/a2d2c_fidelity.md`` and in the class docstring.
"""
import math
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F

from mmdyn.utils.validation import check_choice, check_positive_int, check_temperature

from ._base import DynamicConvBase, TemperatureMixin, at_least_float32, conv_output_hw
from .batched_conv import (MIX_STRATEGIES, bank_maps, combine_maps, empty_batch_output,
                           is_channels_last, is_empty_batch, is_exporting,
                           mixed_kernel_conv2d, select_strategy)
from .fused_attention import fused_mixture_conv2d, use_fused
from .registry import register_layer

SAMPLING_MODES = ('random', 'fixed', 'none')
IMPLS = ('fast', 'reference')


def sample_positions(batch: int, out_hw: Tuple[int, int], num_points: int, mode: str,
                     device=None) -> Optional[torch.Tensor]:
    """Draw the output positions whose responses are averaged (Eq. 3).

    Args:
        batch: Batch size B; ``random`` draws a separate set per image.
        out_hw: Output map size ``(H', W')``.
        num_points: M.
        mode: ``'random'`` (M distinct positions uniformly per image, the
            paper's RS), ``'fixed'`` (M positions evenly spaced over the
            row-major flattened map, the same for every image and step: FS)
            or ``'none'`` (all positions, the global mean: "w/o LS").
        device: Device of the returned indices.

    Returns:
        ``(B, M)`` long tensor of flat indices into ``H'*W'``, or ``None``
        meaning "every position" (``mode='none'`` or ``M >= H'*W'``).
    """
    total = out_hw[0] * out_hw[1]
    if mode == 'none' or num_points >= total:
        return None
    if mode == 'random':
        return torch.rand(batch, total, device=device).topk(num_points, dim=1).indices
    if mode == 'fixed':
        idx = torch.linspace(0, total - 1, num_points, device=device).round().long()
        return idx.unsqueeze(0).expand(batch, num_points)
    raise ValueError(f'unknown sampling {mode!r}; expected one of {list(SAMPLING_MODES)}')


def _tap_ranges(size: int, out_size: int, k: int, stride: int, pad: int, dil: int):
    """For each kernel tap, the slice of input rows (or columns) it reads over
    all output positions, clipped to the unpadded input (padding reads zeros)."""
    ranges = []
    for t in range(k):
        off = t * dil - pad
        lo = 0 if off >= 0 else (-off + stride - 1) // stride  # first valid output index
        hi = min(out_size - 1, (size - 1 - off) // stride)    # last valid output index
        ranges.append(slice(lo * stride + off, hi * stride + off + 1, stride)
                      if hi >= lo else None)
    return ranges


def mean_input_patches(x: torch.Tensor, positions: Optional[torch.Tensor],
                       kernel_size, stride, padding, dilation,
                       out_hw: Tuple[int, int]) -> torch.Tensor:
    """Mean of the (zero-padded) input patches under the chosen output positions.

    Args:
        x: ``(B, C_in, H, W)``.
        positions: ``(B, M)`` flat output indices, or ``None`` for all positions.
        kernel_size, stride, padding, dilation: Pairs, as the convolution.
        out_hw: ``(H', W')``.

    Returns:
        ``(B, C_in, kh*kw)``: the average patch, so that for every kernel
        ``mean_p F(p) = <W, patch mean> + b`` exactly.
    """
    batch, cin, height, width = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    if positions is None:
        # Sum over every output position without materialising patches:
        # reduce the columns each kernel column reads, then the rows.
        rows = _tap_ranges(height, out_hw[0], kh, sh, ph, dh)
        cols = _tap_ranges(width, out_hw[1], kw, sw, pw, dw)
        zeros = x.new_zeros(batch, cin)
        taps = []
        col_sums = [None if c is None else x[:, :, :, c].sum(3) for c in cols]
        for r in rows:
            for cs in col_sums:
                taps.append(zeros if r is None or cs is None else cs[:, :, r].sum(2))
        return torch.stack(taps, dim=2) / float(out_hw[0] * out_hw[1])
    # Sampled positions: a selection matrix S[b, tap, q] = (1/M) * #(sampled
    # outputs whose tap reads input pixel q), then mean patch = x @ S^T. One
    # batched matmul reads x once (a gather of M*k*k values per channel is
    # slower, and its backward is a scatter).
    num = positions.size(1)
    oy = torch.div(positions, out_hw[1], rounding_mode='floor')
    ox = positions - oy * out_hw[1]
    ty = torch.arange(kh, device=x.device) * dh - ph
    tx = torch.arange(kw, device=x.device) * dw - pw
    iy = (oy * sh)[:, :, None, None] + ty.view(1, 1, kh, 1)            # (B, M, kh, 1)
    ix = (ox * sw)[:, :, None, None] + tx.view(1, 1, 1, kw)            # (B, M, 1, kw)
    valid = (iy >= 0) & (iy < height) & (ix >= 0) & (ix < width)        # (B, M, kh, kw)
    tap = torch.arange(kh * kw, device=x.device).view(1, 1, kh, kw)
    index = tap * (height * width) + iy.clamp(0, height - 1) * width + ix.clamp(0, width - 1)
    select = x.new_zeros(batch, kh * kw * height * width)
    select.scatter_add_(1, index.reshape(batch, -1), valid.reshape(batch, -1).to(x.dtype) / num)
    select = select.view(batch, kh * kw, height * width).transpose(1, 2)
    return torch.bmm(x.reshape(batch, cin, height * width), select)


def mean_input_patches_madds(batch: int, channels: int, in_hw: Tuple[int, int],
                             out_hw: Tuple[int, int], kernel_size, stride, padding, dilation,
                             num_points: Optional[int] = None) -> int:
    """MAdds of :func:`mean_input_patches` (``num_points`` None: every position).

    Every position: the column sums each kernel column reads, the row sums of
    those, and the division (about ``kw*C_in*H*W' + kh*kw*C_in*H'`` per image).
    M sampled points: the scatter into the selection matrix and its division
    (``2*B*M*kh*kw``) and one bmm ``B*C_in*H*W*kh*kw``.
    """
    (kh, kw), taps = kernel_size, kernel_size[0] * kernel_size[1]
    if num_points is not None:
        return 2 * batch * num_points * taps + batch * channels * in_hw[0] * in_hw[1] * taps
    rows = [r for r in _tap_ranges(in_hw[0], out_hw[0], kh, stride[0], padding[0], dilation[0])
            if r is not None]
    cols = [c for c in _tap_ranges(in_hw[1], out_hw[1], kw, stride[1], padding[1], dilation[1])
            if c is not None]
    col_sums = sum(batch * channels * in_hw[0] * len(range(in_hw[1])[c]) for c in cols)
    row_sums = sum(batch * channels * len(range(in_hw[0])[r]) for r in rows) * len(cols)
    return col_sums + row_sums + batch * channels * taps


def position_mean(maps: torch.Tensor, positions: Optional[torch.Tensor]) -> torch.Tensor:
    """Eq. 4 on feature maps: mean of ``(B, K, C, H', W')`` over the sampled
    output positions (``(B, M)`` flat indices, or ``None`` for all), ``(B, K, C)``."""
    # Every size but the batch a constant of the graph (int), none a -1: onnxruntime
    # cannot infer a -1 (its Reshape fusion makes one of a product of sizes) beside a
    # batch of 0.
    batch = maps.size(0)
    num_k, channels, out_h, out_w = (int(size) for size in maps.shape[1:])
    flat = maps.reshape(batch, num_k, channels, out_h * out_w)
    if positions is None:
        return flat.mean(3)
    num = positions.size(1)
    index = positions.view(batch, 1, 1, num).expand(batch, num_k, channels, num)
    return flat.gather(3, index).mean(3)


def a2d2c_logits(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                 positions: Optional[torch.Tensor], stride, padding, dilation,
                 groups: int) -> torch.Tensor:
    """Eq. 3-4 without the K maps: ``p̄[b, k, n] = W_k[n] · mean patch_b + b_k[n]``.

    The mean response of ``F_k`` over the positions is the kernel's dot product
    with the mean input patch under them (:func:`mean_input_patches`), computed
    in float32 at least.

    Args:
        x: ``(B, C_in, H, W)``.
        weight: Kernel bank ``(K, C_out, C_in/g, kh, kw)``.
        bias: ``(K, C_out)`` or ``None``.
        positions: Output of :func:`sample_positions` (``None``: every position).
        stride, padding, dilation, groups: Convolution geometry.

    Returns:
        ``(B, K, C_out)``.
    """
    num_k, cout, cin_g, kh, kw = weight.shape
    batch = x.size(0)
    out_hw = conv_output_hw(x.shape[2:], (kh, kw), stride, padding, dilation)
    dtype = torch.promote_types(weight.dtype, torch.float32)
    patch = mean_input_patches(x.to(dtype), positions, (kh, kw), stride, padding, dilation,
                               out_hw)
    patch = patch.view(batch, groups, cin_g * kh * kw)
    bank = weight.to(dtype).view(num_k, groups, cout // groups, cin_g * kh * kw)
    logits = torch.einsum('bgi,kgoi->bkgo', patch, bank).reshape(batch, num_k, cout)
    if bias is not None:
        logits = logits + bias.to(dtype).unsqueeze(0)
    return logits


def a2d2c_attention(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Eq. 5: ``softmax(p̄ / T)`` over the K kernels (dim 1), in float32 at least."""
    return torch.softmax(at_least_float32(logits) / temperature, dim=1)


def a2d2c_fast(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
               positions: Optional[torch.Tensor], temperature: float, stride, padding,
               dilation, groups: int, strategy: str = 'auto') -> torch.Tensor:
    """Exact one-convolution A2D2C/A2D2C+ (``docs/a2d2c_fidelity.md``, "The exact
    fast path").

    ``p̄`` comes from :func:`a2d2c_logits` (the ``maps`` strategy reads it off the
    K maps of its one convolution instead, the fused CPU path computes it block
    by block: the same values up to round-off).

    Args:
        x: ``(B, C_in, H, W)``.
        weight: Kernel bank ``(K, C_out, C_in/g, kh, kw)``.
        bias: ``(K, C_out)`` or ``None``.
        positions: Output of :func:`sample_positions`.
        temperature: T.
        stride, padding, dilation, groups: Convolution geometry.
        strategy: Per-sample convolution strategy (see ``batched_conv``).

    Returns:
        ``(B, C_out, H', W')``.
    """
    kh, kw = weight.shape[3:]
    out_hw = conv_output_hw(x.shape[2:], (kh, kw), stride, padding, dilation)
    if is_exporting():  # tracing/exporting: the batch-agnostic 'maps' path
        strategy = 'maps'
    if strategy == 'auto' and use_fused(x, weight, groups, out_hw):  # fused_attention.py
        patch = mean_input_patches(x, positions, (kh, kw), stride, padding, dilation, out_hw)
        return fused_mixture_conv2d(x, weight, bias, patch=patch.flatten(1),
                                    temperature=temperature, stride=stride, padding=padding,
                                    dilation=dilation)
    if strategy == 'auto':
        strategy = select_strategy(x, weight.shape[1:], out_hw, maps_ok=True)
    if strategy == 'maps':
        # Eq. 8 with the K maps of ONE convolution; p̄ is read off the maps, so the
        # bank is used (and back-propagated) once.
        maps = bank_maps(x, weight, bias, stride, padding, dilation, groups)
        attn = a2d2c_attention(position_mean(maps, positions), temperature)
        out = combine_maps(maps, attn)
        if is_channels_last(x):
            out = out.contiguous(memory_format=torch.channels_last)
        return out
    logits = a2d2c_logits(x, weight, bias, positions, stride, padding, dilation, groups)
    attn = a2d2c_attention(logits, temperature)                       # (B, K, C_out)
    return mixed_kernel_conv2d(x, attn, weight, bias, None, stride, padding, dilation, groups,
                               strategy)


def a2d2c_reference(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                    positions: Optional[torch.Tensor], temperature: float, stride, padding,
                    dilation, groups: int, plus: bool) -> torch.Tensor:
    """The paper's literal computation (Algorithms 1 and 2).

    K convolutions give ``F_k``; the sampled positions of each ``F_k`` are
    averaged and soft-maxed into ``π``. A2D2C (``plus=False``) then builds the
    per-sample kernel ``Σ_k π_k W_k`` and convolves ``x`` again, one sample at a
    time; A2D2C+ (``plus=True``) returns ``Σ_k π_k ⊙ F_k``.
    """
    num_k = weight.size(0)
    maps = torch.stack([
        F.conv2d(x, weight[k], None if bias is None else bias[k], stride, padding, dilation,
                 groups) for k in range(num_k)
    ], dim=1)                                                          # (B, K, C_out, H', W')
    batch, _, cout = maps.shape[:3]
    attn = a2d2c_attention(position_mean(maps, positions), temperature)  # (B, K, C_out)
    if plus:
        return combine_maps(maps, attn)
    outs = []
    for b in range(batch):
        a = attn[b].to(weight.dtype)
        kernel = (a.view(num_k, cout, 1, 1, 1) * weight).sum(0)
        b_agg = None if bias is None else (a * bias).sum(0)
        outs.append(F.conv2d(x[b:b + 1], kernel, b_agg, stride, padding, dilation, groups))
    return torch.cat(outs)


@register_layer('A2D2C')
class A2D2CConv2d(TemperatureMixin, DynamicConvBase):
    """A2D2C: Adaptive Attention-Driven Dynamic Convolution (drop-in ``nn.Conv2d``).

    Paper: Zhang et al., *A2D2C: Adaptive attention-driven dynamic convolution
    for local feature adaptation*, Pattern Recognition 2026, Sec. 3.2-3.3,
    Algorithm 1. Keeps ``K`` base kernels; for each sample and output channel,
    averages the K kernels' responses over ``M`` sampled output positions,
    turns them into ``softmax(·/T)`` weights over the kernels and convolves
    with the weighted kernel.

    Shapes: input ``(B, C_in, H, W)`` -> output ``(B, C_out, H', W')`` with
    ``H', W'`` as ``nn.Conv2d``. Parameters: ``weight`` ``(K, C_out, C_in/g,
    kh, kw)``, ``bias`` ``(K, C_out)`` (mixed by the same attention).

    Readings of the paper (also in ``docs/a2d2c_fidelity.md``):

    * Attention is per sample, per kernel, per output channel ("N weight
      sets"), and gradients flow through it into the kernels.
    * Points are drawn per image, M distinct output positions, uniformly; if
      ``M >= H'*W'`` every position is used.
    * Eval is deterministic by default: the mean over all output positions,
      which is the expectation of the training estimator (``eval_sampling``
      can select ``'random'`` or ``'fixed'`` instead).
    * Eq. 7 convolves "F" with the new kernel; we read F as the layer input x
      (Eq. 8 writes ``* x``).
    * The paper's ``r`` (0.0625 / 0.1) is not used by the equations; A2D2C adds
      no parameter beyond the K kernels (see the fidelity note).

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation,
        groups, bias: As ``nn.Conv2d`` (``bias`` defaults to False).
        kernel_num (int): K, number of base kernels. Default: 4.
        num_points (int): M, sampled output positions. Default: 100.
        sampling (str): Training sampling: ``'random'`` (RS, default),
            ``'fixed'`` (FS) or ``'none'`` (all positions, "w/o LS").
        temperature (float): Softmax temperature T, annealed to 1 by
            ``TemperatureAnnealHook``. Default: 30.
        eval_sampling (str | None): Sampling in eval mode; ``None`` (default)
            means ``'none'`` for random training sampling and the training mode
            otherwise.
        impl (str): ``'fast'`` (one convolution, default) or ``'reference'``.
        strategy (str): Per-sample convolution strategy of the fast path,
            ``'auto'`` (default), ``'grouped'``, ``'loop'`` or ``'bmm'``.

    While traced or exported (``torch.jit.trace``, ``torch.onnx.export``,
    ``torch.export``) the layer runs the batch-agnostic ``maps`` form of the
    fast path whatever ``impl`` and ``strategy`` say (the same function);
    ``sampling='random'`` cannot be exported (use eval mode). An empty batch
    gives an empty output, as ``nn.Conv2d``.
    """

    _plus = False
    has_kernel_bank = True
    strategies = MIX_STRATEGIES

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=False, *, kernel_num: int = 4,
                 num_points: int = 100, sampling: str = 'random', temperature: float = 30.0,
                 eval_sampling: Optional[str] = None, impl: str = 'fast',
                 strategy: str = 'auto'):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias)
        self.kernel_num = check_positive_int('kernel_num', kernel_num)
        self.num_points = check_positive_int('num_points', num_points)
        self.sampling = check_choice('sampling', sampling, SAMPLING_MODES)
        if eval_sampling is None:
            eval_sampling = 'none' if sampling == 'random' else sampling
        self.eval_sampling = check_choice('eval_sampling', eval_sampling, SAMPLING_MODES)
        self.temperature = check_temperature(temperature)
        self.impl = check_choice('impl', impl, IMPLS)
        self.strategy = check_choice('strategy', strategy, self.strategies)
        self.create_kernel_bank(kernel_num, bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Each base kernel initialised like an ``nn.Conv2d`` of its own shape."""
        self.reset_kernel_bank()

    def draw_positions(self, x: torch.Tensor) -> Optional[torch.Tensor]:
        """Positions used by the next forward of ``x`` (train/eval sampling)."""
        mode = self.sampling if self.training else self.eval_sampling
        out_hw = self.output_size(x.size(2), x.size(3))
        return sample_positions(x.size(0), out_hw, self.num_points, mode, x.device)

    def attention_logits(self, x: torch.Tensor,
                         positions: Optional[torch.Tensor]) -> torch.Tensor:
        """``p̄`` ``(B, K, C_out)`` for ``x`` averaged over ``positions`` (from
        :meth:`draw_positions`; ``None``: every position), by :func:`a2d2c_logits`."""
        return a2d2c_logits(x, self.weight, self.bias, positions, self.stride, self.padding,
                            self.dilation, self.groups)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """``π = softmax(p̄ / T)`` ``(B, K, C_out)``, float32 at least: the attention
        the forward mixes the kernels with (it draws the positions as the forward
        does, so a random draw gives the forward's own attention only from the
        same RNG state)."""
        return a2d2c_attention(self.attention_logits(x, self.draw_positions(x)),
                               self.temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        if is_empty_batch(x):
            return empty_batch_output(self, x)
        exporting = is_exporting()
        mode = self.sampling if self.training else self.eval_sampling
        if exporting and mode == 'random' and self.num_points < math.prod(
                self.output_size(x.size(2), x.size(3))):
            raise RuntimeError(f"{type(self).__name__}: sampling 'random' draws new positions "
                               f"at every call and cannot be traced or exported; export in "
                               f"eval mode with eval_sampling 'none' (the default) or 'fixed'")
        positions = self.draw_positions(x)
        if self.impl == 'fast' or exporting:  # the reference loops over the batch
            return a2d2c_fast(x, self.weight, self.bias, positions, self.temperature,
                              self.stride, self.padding, self.dilation, self.groups,
                              self.strategy)
        return a2d2c_reference(x, self.weight, self.bias, positions, self.temperature,
                               self.stride, self.padding, self.dilation, self.groups,
                               plus=self._plus)

    def madds(self, input_hw: Tuple[int, int], batch: int = 1,
              training: bool = False) -> Dict[str, int]:
        """Closed-form MAdds of one forward, by part, following its code path
        (``P = H'*W'``, ``kernel = C_out*C_in/g*kh*kw``, ``N`` = M sampled
        points or P; random sampling adds its ``topk`` ``B*P``).

        * ``impl='fast'`` with the ``maps`` strategy: K convolutions in one,
          ``p̄`` from the maps ``B*K*C_out*N``, /T and softmax ``2*B*K*C_out``
          (``attention``), the weighted sum of the maps ``2*B*K*C_out*P``.
        * ``impl='fast'`` otherwise: :func:`mean_input_patches_madds`
          (``patch_mean``), the logits ``B*K*kernel`` + /T, softmax (+ bias)
          ``B*K*C_out*(2 or 3)`` (``attention``), then the mixture
          (:meth:`~mmdyn.ops._base.DynamicConvBase.mixture_madds`).
        * ``impl='reference'``: K convolutions, ``p̄`` and softmax as for
          ``maps``; A2D2C+ weights the maps (``2*B*K*C_out*P``), A2D2C builds
          the kernel (``2*B*K*kernel``, + ``2*B*K*C_out`` with a bias) and
          convolves again (K+1 convolutions).
        """
        h, w = input_hw
        out_hw = self.output_size(h, w)
        b, num_k, cout = batch, self.kernel_num, self.out_channels
        positions = out_hw[0] * out_hw[1]
        kernel = self.weight[0].numel()
        mode = self.sampling if training else self.eval_sampling
        sampled = mode != 'none' and self.num_points < positions
        topk = b * positions if sampled and mode == 'random' else 0
        # p̄ read off K maps (mean over N points), then /T and softmax
        map_attention = b * num_k * cout * ((self.num_points if sampled else positions) + 2)
        if self.impl == 'reference':
            conv = self.static_conv_madds(b, out_hw)
            if self._plus:
                return dict(conv=num_k * conv, attention=map_attention + topk,
                            aggregation=2 * b * num_k * cout * positions)
            bias = 0 if self.bias is None else 2 * b * num_k * cout
            return dict(conv=(num_k + 1) * conv, attention=map_attention + topk,
                        aggregation=2 * b * num_k * kernel + bias)
        strategy = self.madds_strategy(b, out_hw, training, maps_ok=True)
        if strategy == 'maps':
            parts = dict(attention=map_attention + topk)
        else:
            patch_mean = mean_input_patches_madds(
                b, self.in_channels, (h, w), out_hw, self.kernel_size, self.stride,
                self.padding, self.dilation, self.num_points if sampled else None)
            parts = dict(patch_mean=patch_mean + topk,
                         attention=b * num_k * kernel + b * num_k * cout * (
                             2 if self.bias is None else 3))
        parts.update(self.mixture_madds(b, out_hw, strategy))
        return parts

    def extra_repr(self) -> str:
        return (super().extra_repr() + f', num_points={self.num_points}, '
                f'sampling={self.sampling}, eval_sampling={self.eval_sampling}, '
                f'impl={self.impl}')


@register_layer('A2D2CPlus')
class A2D2CPlusConv2d(A2D2CConv2d):
    """A2D2C+: the streamlined A2D2C (Zhang et al., Pattern Recognition 2026,
    Sec. 3.4, Eq. 8, Algorithm 2).

    Same parameters, options and output as :class:`A2D2CConv2d`; only the
    ``impl='reference'`` path differs: it weights the K feature maps already
    computed (``y = Σ_k π_k ⊙ F_k``) instead of convolving again. The default
    ``impl='fast'`` path is shared (one convolution), so both classes give the
    same output for the same weights and positions.
    """

    _plus = True
