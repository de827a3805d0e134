"""Parameter and MAdds (multiply-add) counting that sees dynamic convolutions.

Why a custom counter (``docs/analysis_tools.md``, "What is counted, and why
plain counters are wrong for dynamic convolutions"): hook-based counters
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
formulas that each layer of :mod:`mmdyn.ops` defines next to its code (its
``madds`` method); the tests check that the two agree, which is the evidence
that the counter and the formulas are right.

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
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from mmdyn.ops._base import conv2d_madds, conv_output_hw

__all__ = [
    'ComplexityResult', 'count_complexity', 'extra_op_handles', 'analytic_madds',
    'analytic_model_madds', 'TraceError', 'build_model_from_cfg', 'is_detector'
]


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
# Analytic per-layer formulas (each mmdyn layer's own ``madds``)
# ----------------------------------------------------------------------------
def analytic_madds(layer: nn.Module, input_hw: Tuple[int, int], batch: int = 1,
                   training: bool = False) -> Dict[str, int]:
    """Closed-form MAdds of one layer, split into parts, following its code path.

    ``nn.Conv2d``: ``conv = B*C_out*C_in/g*kh*kw*H'*W'``. An mmdyn layer gives
    its own formulas through its ``madds(input_hw, batch, training)`` method,
    defined next to the code it mirrors (e.g.
    :meth:`mmdyn.ops.A2D2CConv2d.madds`, :meth:`mmdyn.ops.ODConv2d.madds`; the
    shared parts in :class:`mmdyn.ops._base.DynamicConvBase`).

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
        TypeError: ``layer`` is neither an ``nn.Conv2d`` nor has ``madds``.
    """
    if isinstance(layer, nn.Conv2d):
        out_hw = conv_output_hw(input_hw, layer.kernel_size, layer.stride, layer.padding,
                                layer.dilation)
        parts = {'conv': conv2d_madds(batch, layer.out_channels,
                                      layer.in_channels // layer.groups, layer.kernel_size,
                                      out_hw)}
    elif _has_madds(layer):
        parts = dict(layer.madds(tuple(input_hw), batch, training))
    else:
        raise TypeError(f'analytic_madds supports nn.Conv2d and the mmdyn layers, got '
                        f'{type(layer).__name__}')
    parts['total'] = sum(parts.values())
    return parts


def _has_madds(module: nn.Module) -> bool:
    return callable(getattr(module, 'madds', None))


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
    sizes: Dict[str, Tuple[int, int, int]] = {}
    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d) or _has_madds(m):
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
# Model helpers shared by the tools (configs: mmdyn.engine.load_config)
# ----------------------------------------------------------------------------
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
