"""Parameter and MAdds (multiply-add) counting that sees dynamic convolutions.

Why a custom counter (REFERENCE §6, "FLOP counts wrong"): hook-based counters
(``ptflops``, the old ``mmcv.cnn.get_model_complexity_info``) only count
``nn.Conv2d``/``nn.Linear`` *modules*; a dynamic convolution computed with
functional ``F.conv2d`` is invisible to them. MMEngine's JIT-trace based
:class:`mmengine.analysis.FlopAnalyzer` does see the functional convolution,
the ``einsum``/``bmm``/``matmul`` and ``linear`` ops, but it silently skips every
other op: the kernel aggregation of the ``loop`` strategy (``aten::mul`` +
``aten::addcmul_``), the attention normalisation (``softmax``), the global
pooling written as ``x.mean((2, 3))``, the A2D2C patch reductions
(``aten::sum``, ``aten::scatter_add_``) and the attention-weighted products.

:func:`count_complexity` runs the same analyzer with extra op handles
(:func:`extra_op_handles`) so the count follows what the code really executes,
and also returns the plain MMEngine count for comparison.
:func:`analytic_madds` gives the same numbers from closed-form per-layer
formulas that mirror the code paths in :mod:`mmdyn.ops`; the tests check that
the two agree, which is the evidence that the counter is right.

Counting conventions (one unit = one multiply-add; MMEngine's convention):

* convolution / linear / matmul / einsum / bmm: MMEngine's handles (bias not
  counted); eval BatchNorm with affine: 2 per element (MMEngine).
* element-wise ``add``/``sub``/``mul``/``div``/``addcmul`` on floating tensors:
  1 per output element (integer index arithmetic is free).
* ``sum``/``mean``: 1 per input element; ``scatter_add_``: 1 per source element.
* ``softmax``: 1 per element; ``topk``: 1 per input element (the comparisons).
* activations (ReLU, ReLU6, sigmoid, hardsigmoid), copies, indexing, random
  numbers and ``im2col``: 0.

Counts are per batch (``input_shape`` includes the batch size; report batch 1).
In eval mode A2D2C averages over all output positions (``eval_sampling='none'``
by default, see ``docs/a2d2c_fidelity.md``); ``mode='train'`` counts the M
sampled points (scatter into a selection matrix + one bmm) and training
BatchNorm instead.
"""
import copy
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

__all__ = [
    'PAPER_FIGURES', 'ComplexityResult', 'count_complexity', 'extra_op_handles',
    'analytic_madds', 'analytic_model_madds', 'match_paper_row', 'TraceError'
]

# ----------------------------------------------------------------------------
# The paper's figures (REFERENCE §3). params in millions, madds in GMAdds
# (224x224 ImageNet / as reported). Keys: (model, layer, dataset).
# ----------------------------------------------------------------------------
#: Published figures to print beside ours. ``source`` tells where each is from.
PAPER_FIGURES: Dict[Tuple[str, str, str], Dict[str, Any]] = {
    # static baselines (official ODConv code, counted)
    ('resnet18', 'static', 'imagenet'): dict(params=11.69, source='ODConv code'),
    ('resnet50', 'static', 'imagenet'): dict(params=25.56, source='ODConv code'),
    ('mobilenetv2_1.0', 'static', 'imagenet'): dict(params=3.50, source='ODConv code'),
    ('mobilenetv2_0.75', 'static', 'imagenet'): dict(params=2.64, source='ODConv code'),
    ('mobilenetv2_0.5', 'static', 'imagenet'): dict(params=1.97, source='ODConv code'),
    # A2D2C paper (seed 003)
    ('resnet18', 'a2d2c', 'imagenet'): dict(params=44.93, madds=1.926, source='A2D2C paper'),
    ('resnet18', 'a2d2cplus', 'imagenet'): dict(params=44.93, madds=1.934,
                                                source='A2D2C paper'),
    ('resnet50', 'a2d2c', 'imagenet'): dict(params=89.70, madds=4.083, source='A2D2C paper'),
    ('resnet50', 'a2d2cplus', 'imagenet'): dict(params=89.70, madds=4.095,
                                                source='A2D2C paper'),
    ('mobilenetv2_0.5', 'a2d2c', 'imagenet'): dict(params=4.05, source='A2D2C paper'),
    ('mobilenetv2_0.5', 'a2d2cplus', 'imagenet'): dict(params=4.05, source='A2D2C paper'),
    ('resnet18', 'a2d2c', 'cifar'): dict(params=43.93, source='A2D2C paper'),
    ('resnet18', 'a2d2cplus', 'cifar'): dict(params=43.93, source='A2D2C paper'),
    ('resnet18', 'dcd', 'imagenet'): dict(params=14.70, source='A2D2C paper'),
    ('resnet50', 'dcd', 'imagenet'): dict(params=29.84, source='A2D2C paper'),
    ('resnet18', 'dyconv', 'imagenet'): dict(params=45.47, source='A2D2C paper'),
    ('resnet18', 'condconv', 'imagenet'): dict(params=89.89, source='A2D2C paper'),
    ('resnet18', 'condconv', 'cifar'): dict(params=81.35, source='A2D2C paper'),
    # ODConv 4x (official code, counted)
    ('resnet18', 'odconv', 'imagenet'): dict(params=44.90, source='ODConv code (4x)'),
    ('resnet50', 'odconv', 'imagenet'): dict(params=90.67, source='ODConv code (4x)'),
    ('mobilenetv2_1.0', 'odconv', 'imagenet'): dict(params=11.51, source='ODConv code (4x)'),
    ('mobilenetv2_0.75', 'odconv', 'imagenet'): dict(params=7.50, source='ODConv code (4x)'),
    ('mobilenetv2_0.5', 'odconv', 'imagenet'): dict(params=4.44, source='ODConv code (4x)'),
    # COCO
    ('mask-rcnn_r50_fpn', 'static', 'coco'): dict(params=46.45, source='A2D2C paper'),
    ('mask-rcnn_r50_fpn', 'a2d2cplus', 'coco'): dict(params=110.24, source='A2D2C paper'),
}


def match_paper_row(name: str) -> Optional[Tuple[Tuple[str, str, str], Dict[str, Any]]]:
    """Find the paper row a config file name refers to.

    The name is matched on its parts: the model (``resnet18``/``r18``,
    ``resnet50``/``r50``, ``mobilenet-v2`` with a width ``0.5x``/``0.75x``,
    ``mask-rcnn`` + ``r50`` + ``fpn``), the layer (``a2d2c-plus``/``a2d2cplus``/
    ``a2d2c+``, ``a2d2c``, ``odconv``, ``dyconv``/``dynamicconv``,
    ``condconv``, ``dcd``, otherwise static) and the dataset (``cifar``,
    ``coco``, otherwise ImageNet).

    Args:
        name: Config file name or path.

    Returns:
        ``(key, figures)`` from :data:`PAPER_FIGURES`, or ``None``.
    """
    n = name.lower().rsplit('/', 1)[-1].replace('_', '-')
    if 'mask-rcnn' in n or 'maskrcnn' in n:
        if not re.search(r'r(esnet)?-?50', n):
            return None
        model = 'mask-rcnn_r50_fpn'
    elif re.search(r'(resnet|r)-?18(?!\d)', n):
        model = 'resnet18'
    elif re.search(r'(resnet|r)-?50(?!\d)', n):
        model = 'resnet50'
    elif re.search(r'mobilenet-?v2|mbv2', n):
        width = (re.search(r'(?<![\d.])(0\.5|0\.75|1\.0|1)x', n)
                 or re.search(r'-w(0\.5|0\.75|1\.0|1)(?![\d.])', n))
        w = {'0.5': '0.5', '0.75': '0.75', '1': '1.0', '1.0': '1.0'}[width.group(1)] \
            if width else '1.0'
        model = f'mobilenetv2_{w}'
    else:
        return None
    if re.search(r'a2d2c-?(plus|\+)', n):
        layer = 'a2d2cplus'
    elif 'a2d2c' in n:
        layer = 'a2d2c'
    elif 'odconv' in n:
        layer = 'odconv'
    elif 'dyconv' in n or 'dynamicconv' in n or 'dynamic-conv' in n:
        layer = 'dyconv'
    elif 'condconv' in n:
        layer = 'condconv'
    elif 'dcd' in n:
        layer = 'dcd'
    else:
        layer = 'static'
    dataset = 'cifar' if 'cifar' in n else 'coco' if 'coco' in n else 'imagenet'
    key = (model, layer, dataset)
    return (key, PAPER_FIGURES[key]) if key in PAPER_FIGURES else None


# ----------------------------------------------------------------------------
# Extra JIT op handles
# ----------------------------------------------------------------------------
def _shape(val) -> Optional[List[int]]:
    try:
        if val.isCompleteTensor():
            return list(val.type().sizes())
    except (AttributeError, RuntimeError):
        pass
    return None


def _is_float(val) -> bool:
    try:
        return val.type().scalarType() in ('Float', 'Double', 'Half', 'BFloat16')
    except (AttributeError, RuntimeError):
        return False


def _numel(val) -> int:
    shape = _shape(val)
    return 0 if shape is None else int(math.prod(shape))


def _float_output_numel(inputs: List[Any], outputs: List[Any]) -> int:
    """1 per element of a floating-point output (element-wise arithmetic)."""
    return _numel(outputs[0]) if _is_float(outputs[0]) else 0


def _float_input_numel(inputs: List[Any], outputs: List[Any]) -> int:
    """1 per element of a floating-point first input (reductions)."""
    return _numel(inputs[0]) if _is_float(inputs[0]) else 0


def _input_numel(inputs: List[Any], outputs: List[Any]) -> int:
    """1 per element of the first input (``topk`` comparisons)."""
    return _numel(inputs[0])


def _scatter_add(inputs: List[Any], outputs: List[Any]) -> int:
    """``scatter_add_(self, dim, index, src)``: one add per source element."""
    return _numel(inputs[3]) if _is_float(inputs[3]) else 0


def extra_op_handles() -> Dict[str, Optional[Callable]]:
    """Op handles added to MMEngine's defaults by :func:`count_complexity`.

    Returns:
        Mapping of ``aten::`` op names to a handle (or ``None``: explicitly
        free, so it is not reported as unsupported).
    """
    handles: Dict[str, Optional[Callable]] = {}
    for op in ('add', 'add_', 'sub', 'sub_', 'rsub', 'mul', 'mul_', 'div', 'div_', 'addcmul',
               'addcmul_', 'neg'):
        handles[f'aten::{op}'] = _float_output_numel
    for op in ('sum', 'mean'):
        handles[f'aten::{op}'] = _float_input_numel
    handles['aten::softmax'] = _float_input_numel
    handles['aten::scatter_add_'] = _scatter_add
    handles['aten::scatter_add'] = _scatter_add
    handles['aten::topk'] = _input_numel
    for op in ('rand', 'randn', 'lt', 'le', 'ne', 'linspace', 'round', 'im2col', 'relu6',
               'hardtanh', 'sigmoid', 'hardsigmoid', 'hardswish', 'silu', 'gelu', 'clone',
               'expand_as', 'max_pool2d', 'ones_like', 'new_ones', 'sort', 'argmax',
               'unflatten', 'col2im', 'pad', 'repeat', 'exp', 'log', 'sqrt', 'abs'):
        handles.setdefault(f'aten::{op}', None)
    return handles


# ----------------------------------------------------------------------------
# Tracing
# ----------------------------------------------------------------------------
class TraceError(RuntimeError):
    """Raised when the model cannot be traced with ``torch.jit`` for counting."""


class _Forward(nn.Module):
    """Wraps ``module`` so that ``forward(x)`` calls ``fn(module, x)``."""

    def __init__(self, module: nn.Module, fn: Callable[[nn.Module, torch.Tensor], Any]):
        super().__init__()
        self.module = module
        self._fn = fn

    def forward(self, x: torch.Tensor):
        return self._fn(self.module, x)


@dataclass
class ComplexityResult:
    """What :func:`count_complexity` measured.

    Attributes:
        params: Total number of parameters.
        madds: Total MAdds with mmdyn's extra op handles.
        madds_mmengine: Total MAdds of plain ``mmengine.analysis.FlopAnalyzer``.
        params_by_module: Parameters per module name ('' = whole model).
        madds_by_module: MAdds per module name (ours).
        madds_by_module_mmengine: MAdds per module name (plain MMEngine).
        by_operator: Our MAdds per operator.
        unsupported_ops: Ops neither MMEngine nor mmdyn count (with counts).
        input_shape: The traced input shape.
        mode: ``'eval'`` or ``'train'``.
    """
    params: int
    madds: int
    madds_mmengine: int
    params_by_module: Dict[str, int] = field(default_factory=dict)
    madds_by_module: Dict[str, int] = field(default_factory=dict)
    madds_by_module_mmengine: Dict[str, int] = field(default_factory=dict)
    by_operator: Dict[str, int] = field(default_factory=dict)
    unsupported_ops: Dict[str, int] = field(default_factory=dict)
    input_shape: Tuple[int, ...] = ()
    mode: str = 'eval'

    def top_level(self) -> List[Tuple[str, int, int, int]]:
        """``(name, params, madds, madds_mmengine)`` per top-level module."""
        names = sorted({k.split('.')[0] for k in self.params_by_module if k} |
                       {k.split('.')[0] for k in self.madds_by_module if k})
        return [(n, self.params_by_module.get(n, 0), self.madds_by_module.get(n, 0),
                 self.madds_by_module_mmengine.get(n, 0)) for n in names]


def _strip(counter: Dict[str, int], prefix: str) -> Dict[str, int]:
    out = {}
    for k, v in counter.items():
        if k == prefix.rstrip('.'):
            out[''] = int(v)
        elif k.startswith(prefix):
            out[k[len(prefix):]] = int(v)
        elif k == '':
            out.setdefault('', int(v))
    return out


def count_complexity(model: nn.Module, input_shape: Sequence[int],
                     forward: Optional[Callable[[nn.Module, torch.Tensor], Any]] = None,
                     mode: str = 'eval', seed: int = 0) -> ComplexityResult:
    """Count parameters and MAdds of ``model`` as its code really computes them.

    Args:
        model: The model (left unchanged: a ``mode='train'`` count runs on a
            deep copy so BatchNorm statistics are not touched).
        input_shape: Full input shape, batch included, e.g. ``(1, 3, 224, 224)``.
        forward: ``fn(model, x)`` to call instead of ``model(x)``, e.g.
            ``lambda m, x: m(x, mode='tensor')`` or
            ``lambda m, x: m.extract_feat(x)``.
        mode: ``'eval'`` (deterministic inference path; A2D2C averages over
            all positions by default) or ``'train'`` (A2D2C draws M points,
            BatchNorm in training mode).
        seed: Seed of the torch RNG used while tracing (random sampling).

    Returns:
        A :class:`ComplexityResult`.

    Raises:
        ValueError: bad ``mode`` or ``input_shape``.
        TraceError: the forward cannot be traced by ``torch.jit`` (data-dependent
            Python control flow, non-tensor outputs, custom C++ ops...).
    """
    from mmengine.analysis import FlopAnalyzer, parameter_count

    from mmdyn.ops.batched_conv import export_safe_path
    if mode not in ('eval', 'train'):
        raise ValueError(f"mode must be 'eval' or 'train', got {mode!r}")
    input_shape = tuple(int(s) for s in input_shape)
    if len(input_shape) < 2 or min(input_shape) < 1:
        raise ValueError(f'input_shape must be a full shape with the batch, e.g. '
                         f'(1, 3, 224, 224); got {input_shape}')
    params_by_module = {k: int(v) for k, v in parameter_count(model).items()}
    target = copy.deepcopy(model) if mode == 'train' else model
    modes = {m: m.training for m in target.modules()}
    target.train(mode == 'train')
    wrapped = _Forward(target, forward or (lambda m, x: m(x)))
    x = torch.randn(*input_shape)
    try:
        param = next(target.parameters())
        x = x.to(param.device)
    except StopIteration:
        pass

    def analyze(extra: bool):
        fa = FlopAnalyzer(wrapped, (x, ))
        if extra:
            fa.set_op_handle(**extra_op_handles())
        fa.unsupported_ops_warnings(False)
        fa.uncalled_modules_warnings(False)
        fa.tracer_warnings('none')
        torch.manual_seed(seed)
        # count what eager mode runs, not the layers' export-safe path (taken while tracing)
        with torch.set_grad_enabled(mode == 'train'), export_safe_path(False):
            total = fa.total()
        return fa, int(total)

    try:
        ours, total = analyze(True)
        plain, total_plain = analyze(False)
        by_module = _strip(ours.by_module(), 'module.')
        by_module_plain = _strip(plain.by_module(), 'module.')
        by_operator = {k: int(v) for k, v in ours.by_operator().items()}
        unsupported = {k: int(v) for k, v in ours.unsupported_ops().items()}
    except TraceError:
        raise
    except Exception as exc:  # torch.jit raises many types
        raise TraceError(
            f'cannot trace {type(model).__name__} with torch.jit for FLOP counting '
            f'(input {input_shape}, mode {mode!r}): {type(exc).__name__}: {exc}. Count a '
            f'traceable part instead (e.g. the backbone and neck of a detector).') from exc
    finally:
        for m, training in modes.items():  # restore per module (e.g. frozen BN)
            m.training = training
    by_module[''] = total
    by_module_plain[''] = total_plain
    return ComplexityResult(
        params=params_by_module.get('', sum(p.numel() for p in model.parameters())),
        madds=total, madds_mmengine=total_plain, params_by_module=params_by_module,
        madds_by_module=by_module, madds_by_module_mmengine=by_module_plain,
        by_operator=by_operator, unsupported_ops=unsupported, input_shape=input_shape,
        mode=mode)


# ----------------------------------------------------------------------------
# Analytic per-layer formulas (mirror the code paths of mmdyn.ops)
# ----------------------------------------------------------------------------
def _out_hw(layer, h: int, w: int) -> Tuple[int, int]:
    return tuple((s + 2 * p - d * (k - 1) - 1) // st + 1 for s, k, st, p, d in zip(
        (h, w), layer.kernel_size, layer.stride, layer.padding, layer.dilation))


def _slice_len(size: int, sl) -> int:
    return 0 if sl is None else len(range(size)[sl])


def _patch_mean_all(layer, batch, h, w, out_hw) -> int:
    """``mean_input_patches`` with every position: column sums, row sums, /."""
    from mmdyn.ops.a2d2c_conv2d import _tap_ranges
    (kh, kw), cin = layer.kernel_size, layer.in_channels
    rows = _tap_ranges(h, out_hw[0], kh, layer.stride[0], layer.padding[0], layer.dilation[0])
    cols = _tap_ranges(w, out_hw[1], kw, layer.stride[1], layer.padding[1], layer.dilation[1])
    n = sum(batch * cin * h * _slice_len(w, c) for c in cols if c is not None)
    n += sum(batch * cin * _slice_len(h, r) for r in rows if r is not None
             for c in cols if c is not None)
    return n + batch * cin * kh * kw


def _patch_mean_sampled(layer, batch, h, w, num, random: bool, out_hw) -> int:
    """``mean_input_patches`` with M points: scatter_add_ + /M + one bmm (+ topk)."""
    kk = layer.kernel_size[0] * layer.kernel_size[1]
    n = 2 * batch * num * kk + batch * layer.in_channels * h * w * kk
    if random:
        n += batch * out_hw[0] * out_hw[1]
    return n


def _mixture(layer, batch, out_hw, attn_per_channel: bool, strategy: str,
             spatial: bool) -> Dict[str, int]:
    """Cost of ``mixed_kernel_conv2d`` (kernel aggregation + the convolution)."""
    num_k, cout, cin_g = layer.kernel_num, layer.out_channels, layer.in_channels // layer.groups
    kk = layer.kernel_size[0] * layer.kernel_size[1]
    positions = out_hw[0] * out_hw[1]
    kernel = cout * cin_g * kk
    conv = batch * kernel * positions
    has_bias = getattr(layer, 'bias', None) is not None and layer.bias.dim() == 2
    if strategy == 'maps':
        return dict(conv=num_k * conv,
                    aggregation=2 * batch * num_k * cout * positions)
    agg = batch * num_k * kernel + (batch * kernel if spatial else 0)
    if has_bias:
        agg += batch * (2 * num_k * cout if strategy == 'loop' else num_k * cout)
    return dict(conv=conv, aggregation=agg)


def _strategy(layer, batch, h, w, out_hw, training: bool, maps_ok: bool) -> str:
    from mmdyn.ops.batched_conv import select_strategy
    strategy = getattr(layer, 'strategy', 'auto')
    if strategy != 'auto':
        return strategy
    x = torch.empty(batch, layer.in_channels, 1, 1)
    kshape = (layer.out_channels, layer.in_channels // layer.groups, *layer.kernel_size)
    with torch.set_grad_enabled(training):
        return select_strategy(x, kshape, out_hw, maps_ok=maps_ok)


def analytic_madds(layer: nn.Module, input_hw: Tuple[int, int], batch: int = 1,
                   training: bool = False) -> Dict[str, int]:
    """Closed-form MAdds of one layer, split into parts, following its code path.

    Formulas (``P = H'*W'``, ``kernel = C_out*C_in/g*kh*kw``, B = batch):

    * ``nn.Conv2d``: ``conv = B*kernel*P``.
    * A2D2C/A2D2C+ fast path with the ``maps`` strategy: K convolutions in one,
      p̄ from the maps ``B*K*C_out*(M or P)``, softmax, weighted sum
      ``2*B*K*C_out*P``. Other strategies: patch mean (eval, all positions: column and row
      sums of the input, ~``kw*C_in*H*W' + kh*kw*C_in*H'``; train, M points:
      ``2*B*M*kh*kw`` scatter + ``B*C_in*H*W*kh*kw`` bmm, + ``B*P`` topk for
      random sampling), logits ``B*K*kernel`` (einsum), ``+ 2*B*K*C_out``
      (/T, softmax; + bias), aggregation ``B*K*kernel``, one ``conv``.
      Reference path: K convolutions + mean/gather + softmax, then A2D2C+
      weights the maps (``2*B*K*C_out*P``) while A2D2C builds the kernel
      (``2*B*K*kernel``) and convolves again (K+1 convolutions).
    * DynamicConv: GAP ``B*C_in*H*W``, MLP ``B*(C_in*h + h*K)``, softmax,
      aggregation ``B*K*kernel``, ``conv``.
    * CondConv: GAP, routing ``B*C_in*E``, aggregation ``B*E*kernel``, ``conv``.
    * ODConv: GAP, attention MLP and heads, channel attention on the input
      ``B*C_in*H*W``, aggregation ``B*(K+1)*kernel`` (the +1 is the spatial
      attention), ``conv``, filter attention ``B*C_out*P``.
    * DCD: static ``conv``, ``conv_1x1`` = Q ``B*C_in*L*P`` + P ``B*L*C_out*P``,
      Φ·Q ``B*L²*P``, BNs/residual/scale, and the small FC branch.

    Args:
        layer: An ``nn.Conv2d`` or an mmdyn layer.
        input_hw: Input ``(H, W)``.
        batch: B.
        training: Train-mode path (A2D2C sampling, training BatchNorm,
            ``maps`` strategy possible when grad is enabled).

    Returns:
        Dict of parts (``conv``, ``attention``, ``aggregation``, ...) plus
        ``total``.

    Raises:
        TypeError: ``layer`` is not a supported type.
    """
    from mmdyn.ops import (A2D2CConv2d, A2D2CPlusConv2d, CondConv2d, DCDConv2d,
                           DynamicConv2d, ODConv2d)
    if not isinstance(layer, (nn.Conv2d, A2D2CConv2d, ODConv2d, DynamicConv2d, CondConv2d,
                              DCDConv2d)):
        raise TypeError(f'analytic_madds supports nn.Conv2d and the mmdyn layers, got '
                        f'{type(layer).__name__}')
    h, w = input_hw
    out_hw = _out_hw(layer, h, w)
    positions = out_hw[0] * out_hw[1]
    cin, cout, groups = layer.in_channels, layer.out_channels, layer.groups
    kk = layer.kernel_size[0] * layer.kernel_size[1]
    b = batch
    parts: Dict[str, int] = {}
    if isinstance(layer, A2D2CConv2d):
        kernel = cout * (cin // groups) * kk
        num_k = layer.kernel_num
        mode = layer.sampling if training else layer.eval_sampling
        sampled = mode != 'none' and layer.num_points < positions
        has_bias = layer.bias is not None
        strategy = (_strategy(layer, b, h, w, out_hw, training, maps_ok=True)
                    if layer.impl == 'fast' else None)
        if strategy == 'maps':  # K maps from one conv; p̄ read off the maps (Eq. 8)
            num = layer.num_points if sampled else positions
            parts['attention'] = b * num_k * cout * (num + 2) + (
                b * positions if sampled and mode == 'random' else 0)
            parts.update(_mixture(layer, b, out_hw, True, strategy, False))
        elif layer.impl == 'fast':
            if sampled:
                parts['patch_mean'] = _patch_mean_sampled(layer, b, h, w, layer.num_points,
                                                          mode == 'random', out_hw)
            else:
                parts['patch_mean'] = _patch_mean_all(layer, b, h, w, out_hw)
            parts['attention'] = b * num_k * kernel + b * num_k * cout * (
                2 + (1 if has_bias else 0))
            parts.update(_mixture(layer, b, out_hw, True, strategy, False))
        else:
            parts['conv'] = b * num_k * kernel * positions
            num = layer.num_points if sampled else positions
            parts['attention'] = b * num_k * cout * (num + 2) + (
                b * out_hw[0] * out_hw[1] if sampled and mode == 'random' else 0)
            if isinstance(layer, A2D2CPlusConv2d):
                parts['aggregation'] = 2 * b * num_k * cout * positions
            else:
                parts['aggregation'] = 2 * b * num_k * kernel + (
                    2 * b * num_k * cout if has_bias else 0)
                parts['conv'] += b * kernel * positions
    elif isinstance(layer, ODConv2d):
        kernel = cout * (cin // groups) * kk
        hid = layer.fc.out_features
        heads = [m.out_features for m in (layer.channel_fc, layer.filter_fc,
                                          layer.spatial_fc, layer.kernel_fc) if m is not None]
        bn = (b * hid * 2) if not training else _bn_train(b * hid)
        parts['attention'] = (b * cin * h * w + b * cin * hid + bn + b * hid * sum(heads) +
                              b * sum(heads) + (b * layer.kernel_num
                                                if layer.kernel_fc is not None else 0))
        parts['channel_filter'] = b * cin * h * w + (b * cout * positions
                                                     if layer.filter_fc is not None else 0)
        strategy = _strategy(layer, b, h, w, out_hw, training, maps_ok=False)
        parts.update(_mixture(layer, b, out_hw, False, strategy,
                              spatial=layer.spatial_fc is not None))
        if layer.bias is not None:
            parts['channel_filter'] += b * cout * positions
    elif isinstance(layer, DynamicConv2d):
        hid = layer.fc1.out_features
        k = layer.kernel_num
        parts['attention'] = b * cin * h * w + b * (cin * hid + hid * k) + 2 * b * k
        strategy = _strategy(layer, b, h, w, out_hw, training, maps_ok=True)
        parts.update(_mixture(layer, b, out_hw, False, strategy, False))
    elif isinstance(layer, CondConv2d):
        k = layer.kernel_num
        parts['attention'] = b * cin * h * w + b * cin * k
        strategy = _strategy(layer, b, h, w, out_hw, training, maps_ok=True)
        parts.update(_mixture(layer, b, out_hw, False, strategy, False))
    elif isinstance(layer, DCDConv2d):
        dim, sq = layer.latent_dim, layer.fc.out_features
        parts['attention'] = (b * cin * h * w + b * (cin * sq + sq * sq + sq * dim * dim +
                                                     sq * cout) + 4 * b * sq + 2 * b * cout)
        parts['conv'] = b * cout * (cin // groups) * kk * positions
        bn = (lambda n: 2 * n) if not training else _bn_train
        parts['conv_1x1'] = b * cin * dim * positions + b * dim * cout * positions  # Q, P
        parts['dynamic'] = (bn(b * dim * positions) + b * dim * dim * positions +
                            bn(b * dim * positions) + b * dim * positions)
        parts['scale'] = 2 * b * cout * positions
    else:  # nn.Conv2d
        parts['conv'] = b * cout * (cin // groups) * kk * positions
    parts['total'] = sum(parts.values())
    return parts


def _bn_train(numel: int) -> int:
    """MMEngine's training BatchNorm count (``norm_flop_counter(1)``: 5 per element)."""
    return 5 * numel


def analytic_model_madds(model: nn.Module, input_shape: Sequence[int],
                         training: bool = False) -> Dict[str, Dict[str, int]]:
    """Analytic MAdds of every convolution in ``model`` (dynamic or static).

    Input sizes are recorded with forward pre-hooks during one forward pass.

    Args:
        model: Any model whose convolutions are ``nn.Conv2d`` or mmdyn layers.
        input_shape: Full input shape, batch included.
        training: Analytic train-mode path.

    Returns:
        ``{module_name: parts}`` (see :func:`analytic_madds`).
    """
    from mmdyn.ops import LAYERS
    types = tuple(LAYERS.values()) + (nn.Conv2d, )
    sizes: Dict[str, Tuple[int, int, int]] = {}
    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, types):
            hooks.append(m.register_forward_pre_hook(
                lambda mod, args, name=name: sizes.__setitem__(
                    name, (args[0].size(0), args[0].size(2), args[0].size(3)))))
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.randn(*input_shape))
    finally:
        model.train(was)
        for hk in hooks:
            hk.remove()
    mods = dict(model.named_modules())
    return {n: analytic_madds(mods[n], (hh, ww), bb, training)
            for n, (bb, hh, ww) in sizes.items()}


# ----------------------------------------------------------------------------
# Config helpers shared by the tools
# ----------------------------------------------------------------------------
def load_config(path: str, cfg_options: Optional[dict] = None):
    """Load an MMDetection / MMPretrain config and set its default scope.

    Imports ``mmdyn.models`` (layer registrations) and sets the default scope
    from ``cfg.default_scope`` (``'mmdet'`` when absent), as ``tools/train.py``.

    Args:
        path: Config file.
        cfg_options: ``--cfg-options`` overrides.

    Returns:
        The :class:`mmengine.config.Config`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
    """
    import os.path as osp

    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import mmdyn.models  # noqa: F401
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file not found: {path}')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    return cfg


def build_model_from_cfg(cfg) -> nn.Module:
    """Build ``cfg.model`` under the config's scope, without any dataset.

    The model keeps its constructor initialisation (nothing is downloaded).

    Raises:
        KeyError: the config has no ``model``.
    """
    from mmengine.registry import MODELS
    if 'model' not in cfg:
        raise KeyError('the config has no `model` field')
    # ``init_weights`` is deliberately not called: it may fetch pretrained
    # weights (``init_cfg=dict(type='Pretrained', ...)``); counts do not need it.
    return MODELS.build(cfg.model).eval()


def is_detector(model: nn.Module) -> bool:
    """True for an MMDetection detector (``BaseDetector``)."""
    try:
        from mmdet.models.detectors import BaseDetector
    except ImportError:  # pragma: no cover - mmdet missing
        return False
    return isinstance(model, BaseDetector)


def detector_tensor_forward(height: int, width: int, batch: int = 1):
    """``fn(model, x)`` running a detector's ``mode='tensor'`` forward with dummy
    data samples (image metadata only) for an ``(H, W)`` input."""
    def fn(model, x):
        from mmdet.structures import DetDataSample
        meta = dict(img_shape=(height, width), ori_shape=(height, width),
                    pad_shape=(height, width), batch_input_shape=(height, width),
                    scale_factor=(1.0, 1.0))
        samples = [DetDataSample(metainfo=meta) for _ in range(x.size(0))]
        return model(x, samples, mode='tensor')
    return fn
