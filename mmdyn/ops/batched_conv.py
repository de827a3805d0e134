"""The shared batched dynamic-convolution routine of mmdyn.

Every layer whose kernel is a per-sample mixture of K base kernels,

    y_b = (s_b ⊙ Σ_k a[b, k(, n)] W_k) * x_b + Σ_k a[b, k(, n)] bias_k,

calls :func:`mixed_kernel_conv2d`: A2D2C/A2D2C+ (fast path, attention per
kernel and output channel), DynamicConv and CondConv (attention per kernel),
ODConv (plus a per-sample spatial attention ``s_b``). It has four exact
strategies with different cost profiles:

``grouped``
    Aggregate all B kernels, reshape ``(B, C_in, H, W)`` to ``(1, B*C_in, H,
    W)`` and run ONE grouped convolution with ``groups = B*g``. One launch; the
    right choice on GPUs and, on CPUs, for large maps (ResNet stage 1).
``loop``
    For each sample and block of output channels, build the mixed kernel while
    it is hot in cache (:data:`LOOP_BLOCK_ELEMENTS`) and run an ordinary
    ``F.conv2d``. On CPU it never writes all B kernels to memory and avoids
    the slow grouped kernel for many-channel layers.
``bmm``
    Aggregate all kernels, ``unfold`` (im2col) the input once and run one
    batched matrix product. Kept for comparison and for GEMM-friendly
    accelerators; its im2col buffer is ``B*C_in*kh*kw*H'*W'`` elements.
``maps``
    Only without spatial attention: ONE static convolution with all ``K*C_out``
    kernels, then ``Σ_k a_k ⊙ F_k`` (Eq. 8 of A2D2C+). K times the FLOPs of the
    others but no per-sample kernel at all: the cheapest where a per-sample
    kernel (``C_out*C_in*k*k`` values) outweighs the map it produces (tiny
    maps, many channels: ResNet stage 4), and the cheapest to back-propagate.

``strategy='auto'`` picks with :func:`select_strategy` (rule and measurements
in its docstring). :func:`batched_dynamic_conv2d` is the kernel-given routine
under ``grouped``/``loop``/``bmm``. The module-level :data:`FORCED_STRATEGY`
(environment variable ``MMDYN_BATCHED_CONV``) overrides ``auto`` globally.

While a model is traced or exported (:func:`is_exporting`) every strategy is
replaced by :func:`export_safe_mixed_conv2d`, which never reads the batch size
(``maps`` without spatial attention, im2col + batched matmul with it); see the
end of this module and ``docs/deploy.md``.
"""
import os
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from ._base import DynamicConvBase, conv_output_hw

#: Strategies for kernels given per sample (:func:`batched_dynamic_conv2d`).
STRATEGIES = ('auto', 'grouped', 'loop', 'bmm')
#: Strategies for mixtures of base kernels (:func:`mixed_kernel_conv2d`).
MIX_STRATEGIES = STRATEGIES + ('maps', )

#: Global override of the ``auto`` choice (``None`` = decide by shape).
FORCED_STRATEGY: Optional[str] = os.environ.get('MMDYN_BATCHED_CONV') or None


@dataclass(frozen=True)
class StrategyRule:
    """The thresholds of ``strategy='auto'`` for one device type, as data.

    :meth:`choose` applies them in this order (the first that matches wins):

    1. batch size 1 -> :attr:`batch1`;
    2. ``maps`` applies (no spatial attention), autograd is recording and the
       output map has at most :attr:`maps_max_positions` positions -> ``maps``;
    3. fewer than :attr:`grouped_below_cin` input channels per group
       (depthwise), an output map of at least :attr:`grouped_min_positions`
       positions, or a per-sample kernel of fewer than
       :attr:`grouped_below_kernel_elements` values -> ``grouped``;
    4. otherwise -> :attr:`otherwise`.

    A threshold of ``None`` disables its test. ``tools/gpu_check.py`` prints
    the rule of its device next to the measured fastest strategy per shape.

    Attributes:
        batch1: Strategy at batch size 1.
        maps_max_positions: Largest ``H'*W'`` for ``maps`` (or None).
        grouped_below_cin: ``grouped`` below this many input channels per group.
        grouped_min_positions: ``grouped`` from this many output positions on.
        grouped_below_kernel_elements: ``grouped`` below this many kernel values.
        otherwise: Strategy for the remaining shapes.
        source: Where the thresholds come from.
    """
    batch1: str = 'loop'
    maps_max_positions: Optional[int] = None
    grouped_below_cin: Optional[int] = None
    grouped_min_positions: Optional[int] = None
    grouped_below_kernel_elements: Optional[int] = None
    otherwise: str = 'grouped'
    source: str = ''

    def choose(self, batch: int, kernel_shape, out_hw: Tuple[int, int], maps_ok: bool = False,
               grad_enabled: bool = True) -> str:
        """The strategy for a batch of ``batch`` inputs (no tensor needed).

        Args:
            batch: Batch size B.
            kernel_shape: ``(C_out, C_in/g, kh, kw)`` of one per-sample kernel.
            out_hw: Output map size.
            maps_ok: Whether the ``maps`` strategy applies.
            grad_enabled: Whether autograd is recording.
        """
        if batch == 1:
            return self.batch1
        positions = out_hw[0] * out_hw[1]
        if (maps_ok and grad_enabled and self.maps_max_positions is not None
                and positions <= self.maps_max_positions):
            return 'maps'
        kernel_elements = kernel_shape[0] * kernel_shape[1] * kernel_shape[2] * kernel_shape[3]
        if ((self.grouped_below_cin is not None and kernel_shape[1] < self.grouped_below_cin)
                or (self.grouped_min_positions is not None
                    and positions >= self.grouped_min_positions)
                or (self.grouped_below_kernel_elements is not None
                    and kernel_elements < self.grouped_below_kernel_elements)):
            return 'grouped'
        return self.otherwise


#: ``strategy='auto'`` rule per device type; other accelerators use
#: :data:`ACCELERATOR_RULE_KEY`'s rule. Thresholds and measurements: :func:`select_strategy`.
STRATEGY_RULES = {
    'cpu': StrategyRule(
        batch1='loop', maps_max_positions=64, grouped_below_cin=8, grouped_min_positions=1024,
        grouped_below_kernel_elements=128 * 128 * 3 * 3, otherwise='loop',
        source='tools/analysis_tools/benchmark_layers.py on the 2-core CI machine (docs/benchmarks.md)'),
    'cuda': StrategyRule(
        batch1='loop', otherwise='grouped',
        source='not measured yet: run tools/gpu_check.py on a GPU (docs/gpu.md)'),
}
#: Device types without an entry in :data:`STRATEGY_RULES` use this entry's rule.
ACCELERATOR_RULE_KEY = 'cuda'


def strategy_rule(device_type: str) -> StrategyRule:
    """The :class:`StrategyRule` that ``strategy='auto'`` applies on ``device_type``."""
    return STRATEGY_RULES.get(device_type, STRATEGY_RULES[ACCELERATOR_RULE_KEY])


def select_strategy(x: torch.Tensor, kernel_shape, out_hw: Tuple[int, int],
                    maps_ok: bool = False) -> str:
    """Choose how to run per-sample kernels for this input.

    Args:
        x: The input ``(B, C_in, H, W)`` (its batch size and device matter).
        kernel_shape: ``(C_out, C_in/g, kh, kw)`` of one per-sample kernel.
        out_hw: Output map size.
        maps_ok: Whether the ``maps`` strategy applies (no spatial attention).

    Rule: :data:`FORCED_STRATEGY` if set, else the :class:`StrategyRule` of
    ``x``'s device type in :data:`STRATEGY_RULES`. CUDA: ``loop`` at batch 1,
    else ``grouped`` (not measured yet). CPU (thresholds measured with
    ``tools/analysis_tools/benchmark_layers.py`` on the 2-core CI machine, ResNet-50 3x3
    stage shapes at batch 32, figures in ``docs/benchmarks.md``):

    * batch 1 -> ``loop`` (a single plain convolution);
    * ``H'*W' <= 64`` (8x8 and smaller), ``maps_ok`` and autograd recording ->
      ``maps``: at 512x7x7 the per-sample kernels (B x 2.4M values) cost more to
      back-propagate than K static convolutions; without autograd the blocked
      ``loop`` is cheaper (it never writes all kernels to memory);
    * fewer than 8 input channels per group (depthwise), maps of 32x32 and
      larger (``H'*W' >= 1024``), or small kernels (fewer than
      128*128*3*3 values, where the B per-sample calls of ``loop`` cost more
      than they save) -> ``grouped``;
    * otherwise (many channels, maps below 32x32) -> ``loop``: there the
      grouped kernel costs 2.5-7x a static conv on CPU (e.g. 256x14x14 and
      512x7x7 at batch 32) and the blocked loop 1.5-3x.
    """
    if FORCED_STRATEGY not in (None, '', 'auto'):
        if FORCED_STRATEGY not in MIX_STRATEGIES:
            raise ValueError(f'unknown forced strategy {FORCED_STRATEGY!r} (MMDYN_BATCHED_CONV '
                             f'or batched_conv.FORCED_STRATEGY); expected one of '
                             f'{list(MIX_STRATEGIES)}')
        if FORCED_STRATEGY != 'maps' or maps_ok:
            return FORCED_STRATEGY
    return strategy_rule(x.device.type).choose(x.size(0), kernel_shape, out_hw, maps_ok,
                                               torch.is_grad_enabled())


def is_channels_last(x: torch.Tensor) -> bool:
    """True for a 4-D tensor laid out channels_last (and not also contiguous)."""
    return not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def mix_kernels(attn: torch.Tensor, bank: torch.Tensor, bias_bank=None, spatial=None):
    """All per-sample kernels ``s_b ⊙ Σ_k attn[b, k(, n)] W_k`` at once.

    Args:
        attn: ``(B, K)`` (one weight per kernel) or ``(B, K, C_out)`` (one per
            kernel and output channel).
        bank: ``(K, C_out, C_in/g, kh, kw)``.
        bias_bank: ``(K, C_out)`` or None.
        spatial: ``(B, kh*kw)`` or None.

    Returns:
        ``(B, C_out, C_in/g, kh, kw)`` kernels and ``(B, C_out)`` biases or None.
    """
    num_k, cout = bank.shape[:2]
    attn = attn.to(bank.dtype)
    if attn.dim() == 2:
        kernels = (attn @ bank.reshape(num_k, -1)).view(attn.size(0), *bank.shape[1:])
        bias = None if bias_bank is None else attn @ bias_bank.to(attn.dtype)
    else:
        kernels = torch.einsum('bkn,kni->bni', attn, bank.reshape(num_k, cout, -1))
        kernels = kernels.view(attn.size(0), *bank.shape[1:])
        bias = None if bias_bank is None else torch.einsum('bkn,kn->bn', attn,
                                                           bias_bank.to(attn.dtype))
    if spatial is not None:
        kernels = kernels * spatial.to(kernels.dtype).view(-1, 1, 1, *bank.shape[3:])
    return kernels, bias


#: Per-sample kernels smaller than this run ``grouped`` rather than ``loop`` (CPU;
#: a copy of ``STRATEGY_RULES['cpu']``, which is what ``auto`` reads).
LOOP_MIN_KERNEL_ELEMENTS = STRATEGY_RULES['cpu'].grouped_below_kernel_elements

#: Target size (elements) of the per-sample kernel block built in cache by
#: the ``loop`` strategy: about 2 MB of float32, what stays in a core's cache.
LOOP_BLOCK_ELEMENTS = 1 << 19


def _loop_mixture(x, attn, bank, bias_bank, spatial, stride, padding, dilation, groups):
    """The ``loop`` strategy: per sample, per block of output channels, build
    the mixed kernel in cache and convolve at once (never all B kernels)."""
    num_k, cout = bank.shape[:2]
    kernel_hw = bank.shape[3:]
    block = cout
    if groups == 1:  # equal blocks of at most LOOP_BLOCK_ELEMENTS, multiples of 16
        num_blocks = -(-cout * bank[0, 0].numel() // LOOP_BLOCK_ELEMENTS)  # ceil
        per_block = -(-cout // num_blocks)
        block = min(cout, (per_block + 15) // 16 * 16)
    attn = attn.to(bank.dtype)
    attn = attn if attn.dim() == 3 else attn.unsqueeze(2)              # (B, K, C_out or 1)
    xs = x.split(1)
    spatials = [None] * len(xs) if spatial is None else spatial.to(bank.dtype).unbind(0)
    # split (not slicing in the loop): the backward of one split is one concatenation,
    # while every slice would add a zero-filled full-size gradient.
    bank_blocks = bank.split(block, 1)
    attn_blocks = attn.split(block, 2) if attn.size(2) > 1 else [attn] * len(bank_blocks)
    bias_blocks = ([None] * len(bank_blocks) if bias_bank is None else
                   bias_bank.to(attn.dtype).split(block, 1))
    outs = []
    for bank_blk, attn_blk, bias_blk in zip(bank_blocks, attn_blocks, bias_blocks):
        banks = bank_blk.unbind(0)
        cols = []
        for xb, a, s in zip(xs, attn_blk.unbind(0), spatials):
            kernel = banks[0] * a[0].view(-1, 1, 1, 1)
            for k in range(1, num_k):
                kernel = kernel.addcmul_(banks[k], a[k].view(-1, 1, 1, 1))
            if s is not None:
                kernel = kernel * s.view(1, 1, *kernel_hw)
            bias = None if bias_blk is None else (a * bias_blk).sum(0)
            cols.append(F.conv2d(xb, kernel, bias, stride, padding, dilation, groups))
        outs.append(torch.cat(cols))
    return outs[0] if len(outs) == 1 else torch.cat(outs, 1)


def bank_maps(x: torch.Tensor, bank: torch.Tensor, bias_bank: Optional[torch.Tensor],
              stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups: int = 1) -> torch.Tensor:
    """All K feature maps ``F_k = W_k * x + b_k`` from ONE static convolution.

    Returns:
        ``(B, K, C_out, H', W')`` (a view of the convolution's output).
    """
    num_k, cout = bank.shape[:2]
    # Order the stacked kernels group-major so that each conv group sees its own
    # input channels: (g, K, C_out/g, ...).
    stacked = bank.view(num_k, groups, cout // groups, *bank.shape[2:]).transpose(0, 1)
    stacked_bias = None if bias_bank is None else bias_bank.view(
        num_k, groups, cout // groups).transpose(0, 1).reshape(-1)
    maps = F.conv2d(x, stacked.reshape(-1, *bank.shape[2:]), stacked_bias, stride, padding,
                    dilation, groups)
    # the batch read from the tensor, the other sizes constants of a traced graph (int):
    # the graph runs at any batch size, 0 included (:func:`export_safe_mixed_conv2d`)
    batch = maps.size(0)
    out_h, out_w = int(maps.size(2)), int(maps.size(3))
    maps = maps.view(batch, groups, num_k, cout // groups, out_h, out_w).transpose(1, 2)
    return maps.reshape(batch, num_k, cout, out_h, out_w)


def combine_maps(maps: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
    """``Σ_k attn[b, k(, n)] ⊙ F_k`` for maps ``(B, K, C_out, H', W')`` and
    attention ``(B, K)`` or ``(B, K, C_out)``."""
    weights = attn.to(maps.dtype)
    weights = weights.view(weights.size(0), *(int(size) for size in weights.shape[1:]),
                           *([1] * (maps.dim() - weights.dim())))
    return (maps * weights).sum(1)


def mixed_kernel_conv2d(x: torch.Tensor, attn: torch.Tensor, bank: torch.Tensor,
                        bias_bank: Optional[torch.Tensor] = None,
                        spatial: Optional[torch.Tensor] = None, stride=(1, 1), padding=(0, 0),
                        dilation=(1, 1), groups: int = 1,
                        strategy: str = 'auto') -> torch.Tensor:
    """Convolve each sample with its mixture of the base kernels.

    Args:
        x: ``(B, C_in, H, W)``.
        attn: ``(B, K)`` or ``(B, K, C_out)`` mixing weights.
        bank: ``(K, C_out, C_in/groups, kh, kw)`` base kernels.
        bias_bank: ``(K, C_out)`` base biases or None.
        spatial: ``(B, kh*kw)`` per-sample spatial attention or None.
        stride, padding, dilation: Pairs, as ``F.conv2d``.
        groups: Channel groups.
        strategy: ``'auto'``, ``'grouped'``, ``'loop'``, ``'bmm'`` or ``'maps'``
            (module docstring). All give the same result up to round-off.

    Returns:
        ``(B, C_out, H', W')``, channels_last if ``x`` is.
    """
    if strategy not in MIX_STRATEGIES:
        raise ValueError(f'unknown strategy {strategy!r}; expected one of '
                         f'{list(MIX_STRATEGIES)}')
    if strategy == 'maps' and spatial is not None:
        raise ValueError("strategy 'maps' needs kernels shared over space; it does not "
                         'apply with a spatial attention (ODConv)')
    if is_exporting():  # batch-agnostic, whatever the strategy (end of this module)
        return export_safe_mixed_conv2d(x, attn, bank, bias_bank, spatial, stride, padding,
                                        dilation, groups)
    if attn.size(0) != x.size(0) or attn.size(1) != bank.size(0):
        raise ValueError(f'attention {tuple(attn.shape)} does not match a batch of '
                         f'{x.size(0)} and {bank.size(0)} kernels')
    num_k, cout, _, kh, kw = bank.shape
    out_hw = conv_output_hw(x.shape[2:], (kh, kw), stride, padding, dilation)
    if strategy == 'auto':
        from .fused_attention import fused_mixture_conv2d, use_fused  # (imports this module)
        if use_fused(x, bank, groups, out_hw):  # one pass, kernels recomputed in backward
            in_scale = None if spatial is None else spatial.view(x.size(0), 1, -1).expand(
                -1, bank.size(2), -1).reshape(x.size(0), -1)
            return fused_mixture_conv2d(x, bank, bias_bank, attn=attn, in_scale=in_scale,
                                        stride=stride, padding=padding, dilation=dilation)
        strategy = select_strategy(x, bank.shape[1:], out_hw, maps_ok=spatial is None)
    if strategy in ('grouped', 'bmm'):
        kernels, bias = mix_kernels(attn, bank, bias_bank, spatial)
        return batched_dynamic_conv2d(x, kernels, bias, stride, padding, dilation, groups,
                                      strategy)
    if strategy == 'loop':
        out = _loop_mixture(x, attn, bank, bias_bank, spatial, stride, padding, dilation,
                            groups)
    else:  # maps: one static conv with all K*C_out kernels, then weight the maps
        out = combine_maps(bank_maps(x, bank, bias_bank, stride, padding, dilation, groups),
                           attn)
    if is_channels_last(x):
        out = out.contiguous(memory_format=torch.channels_last)
    return out


def batched_dynamic_conv2d(x: torch.Tensor, weight: torch.Tensor,
                           bias: Optional[torch.Tensor] = None, stride=(1, 1),
                           padding=(0, 0), dilation=(1, 1), groups: int = 1,
                           strategy: str = 'auto') -> torch.Tensor:
    """Convolve sample ``b`` of ``x`` with kernel ``weight[b]`` (and ``bias[b]``).

    Args:
        x: Input, ``(B, C_in, H, W)``.
        weight: Per-sample kernels, ``(B, C_out, C_in/groups, kh, kw)``.
        bias: Optional per-sample bias, ``(B, C_out)``.
        stride, padding, dilation: As in ``F.conv2d`` (pairs).
        groups: Channel groups of each per-sample convolution.
        strategy: ``'auto'``, ``'grouped'``, ``'loop'`` or ``'bmm'`` (see the
            module docstring). All give the same result up to float round-off.

    Returns:
        ``(B, C_out, H', W')``, in ``channels_last`` memory format if ``x`` was.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f'unknown strategy {strategy!r}; expected one of {list(STRATEGIES)}')
    batch, cin, height, width = x.shape
    cout, kh, kw = weight.size(1), weight.size(3), weight.size(4)
    if weight.size(0) != batch:
        raise ValueError(f'weight has {weight.size(0)} kernels for a batch of {batch}')
    out_h, out_w = conv_output_hw(x.shape[2:], (kh, kw), stride, padding, dilation)
    if strategy == 'auto':
        strategy = select_strategy(x, weight.shape[1:], (out_h, out_w))

    if strategy == 'grouped':
        out = F.conv2d(x.reshape(1, batch * cin, height, width),
                       weight.reshape(batch * cout, cin // groups, kh, kw),
                       None if bias is None else bias.reshape(-1),
                       stride, padding, dilation, batch * groups)
        out = out.view(batch, cout, out_h, out_w)
    elif strategy == 'loop':
        # split/unbind (not x[b], weight[b]): their backward concatenates the
        # per-sample gradients once instead of adding B full-size zero tensors.
        biases = [None] * batch if bias is None else bias.unbind(0)
        out = torch.cat([
            F.conv2d(xb, wb, bb, stride, padding, dilation, groups)
            for xb, wb, bb in zip(x.split(1), weight.unbind(0), biases)
        ])
    else:  # bmm
        cols = F.unfold(x, (kh, kw), dilation=dilation, padding=padding, stride=stride)
        cols = cols.view(batch, groups, (cin // groups) * kh * kw, out_h * out_w)
        w = weight.reshape(batch, groups, cout // groups, (cin // groups) * kh * kw)
        out = torch.matmul(w, cols).view(batch, cout, out_h, out_w)
        if bias is not None:
            out = out + bias.to(out.dtype).view(batch, cout, 1, 1)
    if is_channels_last(x):
        out = out.contiguous(memory_format=torch.channels_last)
    return out


# ============================================================================
# Export-safe path (torch.jit.trace, torch.onnx.export, torch.export) and empty
# batches. Everything below is batch-agnostic: no Python loop over the batch, no
# ``groups = B*g`` and no branch on the batch size, so a graph traced at one
# batch size runs at any other.
# ============================================================================

#: ``None``: take the export-safe path only while tracing/exporting; True/False:
#: always/never (set by :class:`export_safe_path`).
_EXPORT_PATH_OVERRIDE: Optional[bool] = None


def is_exporting() -> bool:
    """Whether mmdyn layers take their export-safe path now: while the model is
    traced or exported (``torch.jit.trace``, ``torch.onnx.export`` with either
    exporter, ``torch.export``), unless :class:`export_safe_path` says otherwise."""
    if _EXPORT_PATH_OVERRIDE is not None:
        return _EXPORT_PATH_OVERRIDE
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return True
    exporting = getattr(getattr(torch, 'compiler', None), 'is_exporting', None)
    return bool(exporting is not None and exporting())


class export_safe_path:  # noqa: N801 (a context manager used like a function)
    """Force the export-safe path on (default) or off, e.g. in eager mode to
    check or time what an exported graph computes::

        with export_safe_path():
            y = layer(x)

    ``export_safe_path(False)`` keeps the eager strategies while tracing (used by
    the FLOP counter, which traces to count what eager mode runs); a graph traced
    so is only valid at its traced batch size.
    """

    def __init__(self, enabled: bool = True):
        self.enabled = bool(enabled)
        self._previous: Optional[bool] = None

    def __enter__(self):
        global _EXPORT_PATH_OVERRIDE
        self._previous = _EXPORT_PATH_OVERRIDE
        _EXPORT_PATH_OVERRIDE = self.enabled
        return self

    def __exit__(self, *exc):
        global _EXPORT_PATH_OVERRIDE
        _EXPORT_PATH_OVERRIDE = self._previous
        return False


def is_empty_batch(x: torch.Tensor) -> bool:
    """True for an eager input with no sample (never while exporting, where the
    batch size must not be read)."""
    return not is_exporting() and x.size(0) == 0


def empty_batch_output(layer: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What ``nn.Conv2d`` returns for an empty batch: a ``(0, C_out, H', W')``
    tensor, connected to ``x`` and to every parameter of ``layer`` (their
    gradients are zeros, so ``backward`` works as for ``nn.Conv2d``).

    ``layer`` needs ``out_channels`` and ``output_size(h, w)``
    (:class:`~mmdyn.ops._base.DynamicConvBase`).
    """
    out_h, out_w = layer.output_size(x.size(2), x.size(3))
    out = x.new_zeros(0, layer.out_channels, out_h, out_w)
    anchor = x.sum() * 0
    for p in layer.parameters():
        if p.requires_grad:
            anchor = anchor + p.sum().to(out.dtype) * 0
    return out + anchor


def export_safe_mixed_conv2d(x: torch.Tensor, attn: torch.Tensor, bank: torch.Tensor,
                             bias_bank: Optional[torch.Tensor] = None,
                             spatial: Optional[torch.Tensor] = None, stride=(1, 1),
                             padding=(0, 0), dilation=(1, 1), groups: int = 1) -> torch.Tensor:
    """:func:`mixed_kernel_conv2d` in a batch-agnostic form (same arguments).

    * Without spatial attention: the ``maps`` strategy, ONE static convolution
      with all ``K*C_out`` kernels, then ``Σ_k attn_k ⊙ F_k``. The exported
      graph holds an ordinary ``Conv`` with constant weights.
    * With a spatial attention (ODConv): the per-sample kernels
      ``s_b ⊙ Σ_k attn[b, k] W_k`` and im2col (:func:`im2col`) + one batched
      matrix product; its reshapes read the batch size from the input (a
      symbolic size in the exported graph, never a constant).

    Both are exact (the same sums as the other strategies, in another order).
    Measured with onnxruntime (CPU, 1 thread, batch 3, K=4, 3x3): ``maps`` costs
    about 4x a static convolution and beats im2col + matmul for kernels shared
    over space; for ODConv, im2col + matmul and a per-tap decomposition cost
    about the same (``docs/deploy.md``).
    """
    if spatial is None:
        out = combine_maps(bank_maps(x, bank, bias_bank, stride, padding, dilation, groups),
                           attn)
    else:
        kernels, bias = mix_kernels(attn, bank, bias_bank, spatial)   # (B, C_out, C_in/g, kh, kw)
        out = unfold_dynamic_conv2d(x, kernels, bias, stride, padding, dilation, groups)
    if is_channels_last(x):
        out = out.contiguous(memory_format=torch.channels_last)
    return out


def im2col(x: torch.Tensor, kernel_size, stride, padding, dilation,
           out_hw: Tuple[int, int]) -> torch.Tensor:
    """The input patches ``(B, C, kh*kw, H', W')``: ``F.unfold``'s values in its
    order (channel-major, then the taps row by row), built from one strided slice
    of the zero-padded input per kernel tap. Unlike ``F.unfold``, whose ONNX form
    (the TorchScript exporter's ``im2col``) reshapes with a ``-1`` that onnxruntime
    cannot resolve for a batch of 0, the slices run at any batch size."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    out_h, out_w = out_hw
    if ph or pw:
        x = F.pad(x, (pw, pw, ph, ph))
    taps = [x[:, :, i * dh:i * dh + sh * (out_h - 1) + 1:sh,
              j * dw:j * dw + sw * (out_w - 1) + 1:sw]
            for i in range(kh) for j in range(kw)]
    return torch.stack(taps, 2)


def unfold_dynamic_conv2d(x: torch.Tensor, kernels: torch.Tensor, bias: Optional[torch.Tensor],
                          stride=(1, 1), padding=(0, 0), dilation=(1, 1),
                          groups: int = 1) -> torch.Tensor:
    """Per-sample kernels ``(B, C_out, C_in/g, kh, kw)`` (and bias ``(B, C_out)``)
    applied by im2col (:func:`im2col`) and one batched matrix product, in a
    batch-agnostic form: every reshape names its sizes from tensor sizes (B) or
    constants, so the TorchScript exporter infers a symbolic batch for every
    value (``unflatten`` defeats its inference, which then falls back to the
    traced batch size downstream), and none has a ``-1`` (an ONNX ``Reshape``
    cannot infer a ``-1`` beside a batch of 0). The export-safe path of the
    layers whose kernels are per sample (ODConv, KernelWarehouse)."""
    cout, cin_g, kh, kw = (int(size) for size in kernels.shape[1:])  # constants in a graph
    batch = x.size(0)
    out_h, out_w = conv_output_hw((int(x.size(2)), int(x.size(3))), (kh, kw), stride, padding,
                                  dilation)
    kernels = kernels.reshape(batch, groups, cout // groups, cin_g * kh * kw)
    cols = im2col(x, (kh, kw), stride, padding, dilation, (out_h, out_w))
    cols = cols.reshape(batch, groups, cin_g * kh * kw, out_h * out_w)
    out = torch.matmul(kernels.to(cols.dtype), cols).reshape(batch, cout, out_h, out_w)
    if bias is not None:
        out = out + bias.to(out.dtype).reshape(batch, cout, 1, 1)
    return out


class KernelMixtureConv2d(DynamicConvBase):
    """Base of the layers whose whole forward is "attention over a kernel bank":
    ``mixed_kernel_conv2d(x, self.attention(x), weight, bias)`` (DynamicConv,
    CondConv). A subclass defines ``attention(x) -> (B, K)`` and
    ``attention_madds(h, w)`` (its per-sample attention cost) and gets
    ``reset_parameters``, ``forward`` and ``madds`` from here.
    """

    has_kernel_bank = True
    strategies = MIX_STRATEGIES

    def reset_parameters(self) -> None:
        """The kernel bank (``kernel_init``), then every child that has a
        ``reset_parameters`` (the attention branch), in registration order."""
        self.reset_kernel_bank()
        for child in self.children():
            if hasattr(child, 'reset_parameters'):
                child.reset_parameters()

    def attention(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def attention_madds(self, height: int, width: int) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        if is_empty_batch(x):
            return empty_batch_output(self, x)
        return mixed_kernel_conv2d(x, self.attention(x), self.weight, self.bias, None,
                                   self.stride, self.padding, self.dilation, self.groups,
                                   self.strategy)

    def madds(self, input_hw: Tuple[int, int], batch: int = 1, training: bool = False):
        """Closed-form MAdds of one forward, by part: ``attention``
        (``batch * attention_madds(H, W)``) and the mixture
        (:meth:`~mmdyn.ops._base.DynamicConvBase.mixture_madds`)."""
        h, w = input_hw
        out_hw = self.output_size(h, w)
        parts = {'attention': batch * self.attention_madds(h, w)}
        strategy = self.madds_strategy(batch, out_hw, training, maps_ok=True)
        parts.update(self.mixture_madds(batch, out_hw, strategy))
        return parts
