"""Device self-check of mmdyn: the library behind ``tools/gpu_check.py``.

Run it as ``python -m mmdyn.utils.gpu_check`` from the repository root (what
``make gpu-check`` does) on a machine where mmdyn is not installed.

Every section returns a dict with ``status`` (``'ok'``, ``'fail'`` or
``'skipped'``), ``reason`` (why it was skipped or failed), ``seconds`` and its
measurements:

``env``
    torch, CUDA, cuDNN, mmcv versions, the device, and the ``strategy='auto'``
    rule of the device (:data:`mmdyn.ops.batched_conv.STRATEGY_RULES`).
``layers``
    every mmdyn layer (and A2D2C+ / ODConv with each per-sample strategy
    forced) on the device against the same layer on the CPU, same weights,
    same input, same sampled positions: forward output, input gradient and
    parameter gradients, in float32 (TF32 off) and under autocast float16 and
    bfloat16, against :data:`TOLERANCES`.
``strategies``
    A2D2C+ with each per-sample strategy timed at the four ResNet-50 3x3
    shapes, batch 32 and 1, forward and forward+backward; what
    ``strategy='auto'`` picks there and what the device's rule says.
``resnet50``
    ResNet-50 (torchvision) static vs A2D2C+ vs ODConv in every block conv:
    AMP training-step throughput and peak ``torch.cuda.max_memory_allocated``.
``maskrcnn``
    with mmcv/mmdet installed (and mmcv built with CUDA ops on CUDA): one
    Mask R-CNN A2D2C+ training iteration and one test iteration on the device
    with the synthetic shapes data (``mmdyn.datasets.make_shapes_coco``).
``torchrun``
    a 1-process ``torchrun`` start of ``tools/train.py`` (NCCL on CUDA, gloo
    on CPU) for a few iterations.
``pytest`` (only when asked for)
    the layer test suite (``tests/ops``) with ``MMDYN_TEST_DEVICE`` set to the
    device (CUDA only; on CPU it is what CI runs).

Only ``maskrcnn`` and ``torchrun`` need OpenMMLab packages; everything else
needs torch alone (``resnet50`` also torchvision), so the layers can be checked
on a GPU machine that has no mmcv. Missing pieces skip their section with the
reason.
"""
import argparse
import copy
import functools
import json
import math
import os
import os.path as osp
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmdyn.ops import LAYERS, MODULES
from mmdyn.ops import batched_conv
from mmdyn.ops.batched_conv import select_strategy, strategy_rule

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SECTIONS = ('env', 'layers', 'strategies', 'resnet50', 'maskrcnn', 'torchrun', 'pytest')
#: What a plain run does (``pytest``, the whole layer suite on the device, is opt-in: it
#: would not fit the 8-minute budget of the check everywhere).
DEFAULT_SECTIONS = SECTIONS[:-1]
PRECISIONS = ('float32', 'float16', 'bfloat16')
#: Per-sample strategies of mixtures of base kernels (``maps`` only without
#: spatial attention).
TIMED_STRATEGIES = ('grouped', 'loop', 'bmm', 'maps')
#: ResNet-50's four 3x3 stage convolutions: (channels, map size), stride 1, padding 1.
RESNET50_SHAPES = ((64, 56), (128, 28), (256, 14), (512, 7))

#: Tolerances of the ``layers`` section: ``max|device - cpu| / max|cpu|`` over the
#: output, the input gradient and every parameter gradient (each normalised by
#: its own largest CPU value). The CPU reference is float32 without autocast;
#: float32 on CUDA runs with TF32 off. Under autocast the convolutions and
#: matmuls run in 16 bits (float16: 11-bit mantissa, bfloat16: 8-bit), so the
#: bounds are a few units of their rounding after K-kernel sums.
TOLERANCES = {
    'float32': dict(out=1e-4, grad=1e-4),
    'float16': dict(out=1e-2, grad=2e-2),
    'bfloat16': dict(out=5e-2, grad=8e-2),
}


@dataclass(frozen=True)
class Scale:
    """Problem sizes of one run (``full`` for a GPU, ``small`` for a CPU test)."""
    layer_batch: int
    layer_channels: int
    layer_size: int
    shapes: tuple
    batch_sizes: tuple
    repeats: int
    warmup: int
    resnet_depth: int
    resnet_batch: int
    resnet_size: int
    resnet_steps: int
    resnet_warmup: int
    det_images: int
    torchrun_iters: int


SCALES = {
    'full': Scale(layer_batch=4, layer_channels=16, layer_size=12, shapes=RESNET50_SHAPES,
                  batch_sizes=(32, 1), repeats=10, warmup=3, resnet_depth=50, resnet_batch=32,
                  resnet_size=224, resnet_steps=10, resnet_warmup=3, det_images=4,
                  torchrun_iters=5),
    # The layer check keeps its size: at smaller sizes, bfloat16 gradients of scalar
    # attention parameters (sums that nearly cancel) exceed any useful tolerance.
    'small': Scale(layer_batch=4, layer_channels=16, layer_size=12, shapes=((8, 8), (16, 4)),
                   batch_sizes=(4, 1), repeats=2, warmup=1, resnet_depth=18, resnet_batch=2,
                   resnet_size=32, resnet_steps=1, resnet_warmup=1, det_images=2,
                   torchrun_iters=2),
}


class DeviceUnavailable(RuntimeError):
    """The requested device cannot be used here."""


def resolve_device(name: str) -> torch.device:
    """``torch.device(name)`` after checking that it can run here.

    Raises:
        DeviceUnavailable: Not a device name, a device type other than cpu
            and cuda, or CUDA asked for where torch sees none.
    """
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceUnavailable(f'--device {name!r} is not a device name; expected cpu, cuda '
                                'or cuda:N') from None
    if device.type not in ('cpu', 'cuda'):
        raise DeviceUnavailable(f'--device {name!r}: only cpu and cuda are checked')
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            built = torch.version.cuda
            why = (f'this torch {torch.__version__} is a CPU build' if built is None else
                   f'torch {torch.__version__} (built for CUDA {built}) sees no GPU '
                   '(no NVIDIA driver, no device, or CUDA_VISIBLE_DEVICES hides it)')
            raise DeviceUnavailable(f'--device {name}: CUDA is not available: {why}. Run on a '
                                    'GPU machine, or use --device cpu')
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceUnavailable(f'--device {name}: only {torch.cuda.device_count()} CUDA '
                                    'device(s) visible')
    return device


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


@contextmanager
def no_tf32():
    """Full float32 matmuls and convolutions on CUDA (TF32 off) inside the block."""
    if not torch.cuda.is_available():
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _section(fn: Callable[..., dict]) -> Callable[..., dict]:
    """Time a section; an unexpected exception becomes a ``fail`` with its message."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            result = fn(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 (reported, the run goes on)
            result = dict(status='fail', reason=f'{type(err).__name__}: {err}')
        result.setdefault('status', 'ok')
        result['seconds'] = round(time.perf_counter() - start, 2)
        return result
    return wrapper


def skipped(reason: str) -> dict:
    return dict(status='skipped', reason=reason)


# ---------------------------------------------------------------------------- env
def mmcv_info(device: Optional[torch.device] = None) -> dict:
    """mmcv's version and whether its compiled ops run on ``device``."""
    try:
        import mmcv
        from mmcv.ops import nms
    except Exception as err:  # noqa: BLE001 (ImportError, or a broken build's OSError)
        return dict(installed=False, reason=f'{type(err).__name__}: {err}')
    info = dict(installed=True, version=mmcv.__version__, ops_on_device=None)
    try:
        from mmcv.ops import get_compiling_cuda_version
        info['compiled_cuda'] = get_compiling_cuda_version()
    except Exception:  # noqa: BLE001
        info['compiled_cuda'] = 'unknown'
    if device is not None:
        boxes = torch.tensor([[0., 0., 1., 1.], [0., 0., 1., 1.]], device=device)
        try:
            nms(boxes, torch.tensor([0.9, 0.8], device=device), 0.5)
            info['ops_on_device'] = True
        except Exception as err:  # noqa: BLE001 ("not compiled with GPU support")
            info['ops_on_device'] = False
            info['ops_error'] = f'{type(err).__name__}: {err}'.splitlines()[0]
    return info


@_section
def check_env(device: torch.device) -> dict:
    env = dict(python=platform.python_version(), torch=torch.__version__,
               torch_cuda=torch.version.cuda, device=str(device),
               rule=asdict(strategy_rule(device.type)),
               forced_strategy=os.environ.get('MMDYN_BATCHED_CONV') or None)
    if device.type == 'cuda':
        props = torch.cuda.get_device_properties(device)
        env.update(device_name=props.name, capability='%d.%d' % (props.major, props.minor),
                   memory_gib=round(props.total_memory / 2**30, 1),
                   cudnn=torch.backends.cudnn.version(),
                   tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
                   tf32_cudnn=torch.backends.cudnn.allow_tf32)
    else:
        env.update(device_name=platform.processor() or platform.machine(),
                   threads=torch.get_num_threads())
    try:
        import torchvision
        env['torchvision'] = torchvision.__version__
    except ImportError:
        env['torchvision'] = None
    env['mmcv'] = mmcv_info(device)
    return env


# ------------------------------------------------------------------------- layers
def layer_variants(kernel_num: int = 4, num_points: int = 100) -> Dict[str, Callable]:
    """Name -> factory(channels) of every checked module (same-size 3x3 convs)."""
    variants = {}
    for alias, cls in LAYERS.items():
        kwargs = dict(kernel_num=kernel_num) if cls.has_kernel_bank else {}
        if alias.startswith('A2D2C'):
            kwargs['num_points'] = num_points
        variants[alias] = functools.partial(_conv, cls, kwargs)
    for strategy in TIMED_STRATEGIES:
        variants[f'A2D2CPlus[{strategy}]'] = functools.partial(
            _conv, LAYERS['A2D2CPlus'], dict(kernel_num=kernel_num, num_points=num_points,
                                             strategy=strategy))
    variants['A2D2CPlus[reference]'] = functools.partial(
        _conv, LAYERS['A2D2CPlus'], dict(kernel_num=kernel_num, num_points=num_points,
                                         impl='reference'))
    for strategy in ('grouped', 'loop', 'bmm'):
        variants[f'ODConv[{strategy}]'] = functools.partial(
            _conv, LAYERS['ODConv'], dict(kernel_num=kernel_num, strategy=strategy))
    variants['DMC'] = functools.partial(_conv, MODULES['DMC'], {})
    variants['AdaptiveEnhancement'] = lambda c: MODULES['AdaptiveEnhancement'](in_channels=c)
    variants['MSFF'] = lambda c: MODULES['MSFF'](in_channels=c)
    return variants


def _conv(cls, kwargs, channels):
    return cls(channels, channels, 3, padding=1, **kwargs)


def _cpu_positions(layer, seed: int, x: torch.Tensor):
    """The layer's own position draw, made on the CPU from ``seed`` and moved to
    ``x``'s device: two copies of a layer on two devices use the same positions."""
    stub = torch.empty(x.shape, device='cpu')
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        positions = type(layer).draw_positions(layer, stub)
    return None if positions is None else positions.to(x.device)


def pin_positions(module: nn.Module, seed: int = 0) -> nn.Module:
    """Make every A2D2C layer in ``module`` draw its sampled positions on the CPU
    from ``seed`` (:func:`_cpu_positions`). Returns ``module``."""
    for m in module.modules():
        if hasattr(m, 'draw_positions') and hasattr(m, 'num_points'):
            m.draw_positions = functools.partial(_cpu_positions, m, seed)
    return module


def relative_error(value: Optional[torch.Tensor], ref: Optional[torch.Tensor]) -> float:
    """``max|value - ref| / max|ref|`` on the CPU in float64 (inf if not finite
    or if exactly one of them is None)."""
    if value is None or ref is None:
        return 0.0 if value is None and ref is None else math.inf
    value = value.detach().to('cpu', torch.float64)
    ref = ref.detach().to('cpu', torch.float64)
    if not torch.isfinite(value).all():
        return math.inf
    scale = float(ref.abs().max()) if ref.numel() else 0.0
    diff = float((value - ref).abs().max()) if ref.numel() else 0.0
    return diff / max(scale, 1e-30)


def _run_with_grads(layer: nn.Module, x: torch.Tensor, weight: torch.Tensor, autocast_dtype):
    layer.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_(True)
    ctx = (torch.autocast(x.device.type, dtype=autocast_dtype) if autocast_dtype is not None
           else nullcontext())
    with ctx:
        out = layer(x)
    (out.float() * weight).sum().backward()
    grads = {name: p.grad for name, p in layer.named_parameters()}
    return out, x.grad, grads


def compare_layer(name: str, factory: Callable, device: torch.device, batch: int,
                  channels: int, size: int, precisions: Sequence[str] = PRECISIONS,
                  seed: int = 0) -> List[dict]:
    """One module on ``device`` against the same module on the CPU.

    Both copies have the same weights (a deep copy), get the same input and
    the same sampled positions (:func:`pin_positions`) and run in train mode;
    the loss is ``sum(out * w)`` with a fixed random ``w``. The CPU reference
    runs in float32 without autocast.

    Returns:
        One row per precision: relative errors of the output, the input
        gradient and the worst parameter gradient, the tolerances, and
        ``ok`` (or ``skipped`` with the reason).
    """
    torch.manual_seed(seed)
    with torch.device('cpu'):  # whatever torch's default device is
        cpu_layer = pin_positions(factory(channels).train(), seed)
    dev_layer = pin_positions(copy.deepcopy(cpu_layer).to(device), seed)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, channels, size, size, generator=gen, device='cpu')
    with torch.no_grad():
        out_shape = cpu_layer(x).shape
    weight = torch.randn(out_shape, generator=gen, device='cpu')
    ref_out, ref_gx, ref_grads = _run_with_grads(cpu_layer, x, weight, None)
    rows = []
    for precision in precisions:
        row = dict(layer=name, precision=precision, tolerance=dict(TOLERANCES[precision]))
        dtype = None if precision == 'float32' else getattr(torch, precision)
        try:
            with no_tf32():
                out, gx, grads = _run_with_grads(dev_layer, x.to(device), weight.to(device),
                                                 dtype)
        except RuntimeError as err:
            if dtype is not None and device.type == 'cpu':  # e.g. no float16 CPU autocast
                row.update(status='skipped', reason=str(err).splitlines()[0])
                rows.append(row)
                continue
            raise
        row['out_dtype'] = str(out.dtype).replace('torch.', '')
        row['out_err'] = relative_error(out, ref_out)
        row['grad_input_err'] = relative_error(gx, ref_gx)
        param_errs = {n: relative_error(grads[n], ref_grads[n]) for n in ref_grads}
        worst = max(param_errs, key=param_errs.get) if param_errs else None
        row['grad_param_err'] = param_errs[worst] if worst else 0.0
        row['worst_param'] = worst
        tol = TOLERANCES[precision]
        ok = (row['out_err'] <= tol['out'] and row['grad_input_err'] <= tol['grad']
              and row['grad_param_err'] <= tol['grad'])
        row['status'] = 'ok' if ok else 'fail'
        rows.append(row)
    return rows


@_section
def check_layers(device: torch.device, scale: Scale) -> dict:
    positions = scale.layer_size * scale.layer_size
    variants = layer_variants(num_points=max(1, positions // 3))  # sampling really samples
    rows = []
    for name, factory in variants.items():
        rows += compare_layer(name, factory, device, scale.layer_batch, scale.layer_channels,
                              scale.layer_size)
    failed = [f'{r["layer"]}/{r["precision"]}' for r in rows if r['status'] == 'fail']
    result = dict(rows=rows, tolerances=TOLERANCES,
                  input=[scale.layer_batch, scale.layer_channels, scale.layer_size,
                         scale.layer_size])
    if failed:
        result.update(status='fail', reason=f'over tolerance: {", ".join(failed)}')
    return result


# --------------------------------------------------------------------- strategies
def interleaved_medians(fns: Dict[str, Callable], device: torch.device, repeats: int,
                        warmup: int) -> Dict[str, float]:
    """Median seconds of each callable, timed round-robin ``repeats`` times after
    ``warmup`` untimed rounds (machine drift hits every callable alike)."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def _fwd(layer, x):
    def fn():
        with torch.no_grad():
            layer(x)
    return fn


def _fwd_bwd(layer, x):
    def fn():
        layer(x).sum().backward()
    return fn


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.cuda.OutOfMemoryError) or 'out of memory' in str(err)


@_section
def check_strategies(device: torch.device, scale: Scale, kernel_num: int = 4,
                     num_points: int = 100) -> dict:
    """Time A2D2C+ with each strategy forced; compare the fastest with ``auto``."""
    rule = strategy_rule(device.type)
    saved_forced = batched_conv.FORCED_STRATEGY
    batched_conv.FORCED_STRATEGY = None  # measure what 'auto' decides by shape
    rows = []
    try:
        for channels, size in scale.shapes:
            kernel_shape = (channels, channels, 3, 3)
            for batch in scale.batch_sizes:
                torch.manual_seed(0)
                base = LAYERS['A2D2CPlus'](channels, channels, 3, padding=1,
                                           kernel_num=kernel_num, num_points=num_points)
                layers = {}
                for strategy in TIMED_STRATEGIES:
                    layer = LAYERS['A2D2CPlus'](channels, channels, 3, padding=1,
                                                kernel_num=kernel_num, num_points=num_points,
                                                strategy=strategy)
                    layer.load_state_dict(base.state_dict())
                    layers[strategy] = layer.to(device).train()
                x = torch.randn(batch, channels, size, size, device=device)
                xg = x.clone().requires_grad_(True)
                for mode, make, grad in (('fwd', _fwd, False), ('fwd+bwd', _fwd_bwd, True)):
                    fns = {s: make(layer, x if mode == 'fwd' else xg)
                           for s, layer in layers.items()}
                    times = {}
                    for s, fn in fns.items():  # drop strategies that do not fit in memory
                        try:
                            fn()
                        except RuntimeError as err:
                            if not _is_oom(err):
                                raise
                            times[s] = None
                            if device.type == 'cuda':
                                torch.cuda.empty_cache()
                    fns = {s: fn for s, fn in fns.items() if s not in times}
                    times.update(interleaved_medians(fns, device, scale.repeats, scale.warmup))
                    with torch.set_grad_enabled(grad):
                        auto = select_strategy(x, kernel_shape, (size, size), maps_ok=True)
                        auto_no_maps = select_strategy(x, kernel_shape, (size, size))
                    ms = {s: None if t is None else 1e3 * t for s, t in times.items()}
                    measured = {s: t for s, t in ms.items() if t is not None}
                    fastest = min(measured, key=measured.get)
                    no_maps = {s: t for s, t in measured.items() if s != 'maps'}
                    fastest_no_maps = min(no_maps, key=no_maps.get)
                    rows.append(dict(
                        channels=channels, size=size, batch=batch, mode=mode, ms=ms,
                        fastest=fastest, auto=auto,
                        rule=rule.choose(batch, kernel_shape, (size, size), True, grad),
                        auto_over_fastest=(measured[auto] / measured[fastest]
                                           if auto in measured else None),
                        fastest_no_maps=fastest_no_maps, auto_no_maps=auto_no_maps,
                        auto_no_maps_over_fastest=(no_maps[auto_no_maps] /
                                                   no_maps[fastest_no_maps]
                                                   if auto_no_maps in no_maps else None)))
                del layers, x, xg
                if device.type == 'cuda':
                    torch.cuda.empty_cache()
    finally:
        batched_conv.FORCED_STRATEGY = saved_forced
    agree = sum(r['auto'] == r['fastest'] for r in rows)
    result = dict(rows=rows, rule=asdict(rule), kernel_num=kernel_num, num_points=num_points,
                  auto_is_fastest=f'{agree}/{len(rows)}',
                  geomean_auto_over_fastest=_geomean([r['auto_over_fastest'] for r in rows
                                                      if r['auto_over_fastest']]))
    mismatch = [r for r in rows if r['auto'] != r['rule']]
    if mismatch:  # select_strategy must apply the rule that is printed
        result.update(status='fail', reason=f'select_strategy disagrees with the printed rule '
                      f'at {len(mismatch)} shape(s)')
    return result


def _geomean(values):
    values = [v for v in values if v and v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


# ------------------------------------------------------------------------ resnet50
def dynamic_resnet(depth: int, conv: Optional[str], kernel_num: int = 4) -> nn.Module:
    """torchvision ResNet-``depth`` with every block conv (conv1/conv2/conv3 of
    each block) replaced by ``LAYERS[conv]`` (the ``all_block_convs`` placement;
    stem, downsample and fc stay static); ``conv=None``: the static network."""
    import torchvision
    model = getattr(torchvision.models, f'resnet{depth}')(weights=None)
    if conv is None:
        return model
    cls = LAYERS[conv]
    kwargs = dict(kernel_num=kernel_num) if cls.has_kernel_bank else {}
    for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
        for block in stage:
            for name in ('conv1', 'conv2', 'conv3'):
                old = getattr(block, name, None)
                if old is None:
                    continue
                setattr(block, name, cls(old.in_channels, old.out_channels, old.kernel_size,
                                         old.stride, old.padding, old.dilation, old.groups,
                                         old.bias is not None, **kwargs))
    return model


def amp_train_throughput(model: nn.Module, device: torch.device, batch: int, size: int,
                         steps: int, warmup: int) -> dict:
    """Images/s of an AMP training step (CUDA: float16 autocast + GradScaler;
    CPU: bfloat16 autocast) and the peak CUDA memory of the timed steps."""
    model = model.to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    amp_dtype = torch.float16 if device.type == 'cuda' else torch.bfloat16
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, size, size, generator=gen).to(device)
    target = torch.randint(0, 1000, (batch, ), generator=gen).to(device)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=amp_dtype):
            loss = F.cross_entropy(model(x), target)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        return loss

    for _ in range(warmup):
        step()
    _sync(device)
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    _sync(device)
    elapsed = time.perf_counter() - start
    return dict(amp_dtype=str(amp_dtype).replace('torch.', ''), step_ms=1e3 * elapsed / steps,
                img_per_s=batch * steps / elapsed, loss=float(loss),
                finite=bool(torch.isfinite(loss)),
                peak_mb=(torch.cuda.max_memory_allocated(device) / 2**20
                         if device.type == 'cuda' else None),
                params_m=sum(p.numel() for p in model.parameters()) / 1e6)


@_section
def check_resnet(device: torch.device, scale: Scale,
                 convs: Sequence[Optional[str]] = (None, 'A2D2CPlus', 'ODConv')) -> dict:
    try:
        import torchvision  # noqa: F401
    except ImportError as err:
        return skipped(f'needs torchvision ({err})')
    rows = []
    for conv in convs:
        torch.manual_seed(0)
        model = dynamic_resnet(scale.resnet_depth, conv)
        row = dict(model=f'ResNet-{scale.resnet_depth} ' + (conv or 'static'),
                   batch=scale.resnet_batch, size=scale.resnet_size)
        try:
            row.update(amp_train_throughput(model, device, scale.resnet_batch,
                                            scale.resnet_size, scale.resnet_steps,
                                            scale.resnet_warmup))
        except RuntimeError as err:
            if not _is_oom(err):
                raise
            row.update(error='out of memory')
        rows.append(row)
        del model
        if device.type == 'cuda':
            torch.cuda.empty_cache()
    static = rows[0].get('img_per_s')
    for row in rows:
        if static and row.get('img_per_s'):
            row['speed_vs_static'] = row['img_per_s'] / static
    result = dict(rows=rows, steps=scale.resnet_steps, warmup=scale.resnet_warmup)
    bad = [r['model'] for r in rows if not r.get('finite')]
    if bad:
        result.update(status='fail', reason=f'no finite loss / no result: {", ".join(bad)}')
    return result


# ------------------------------------------------------------------------ maskrcnn
DEMO_CONFIG = osp.join(ROOT, 'configs', 'demo', 'mask-rcnn_r18-a2d2c-plus_fpn_shapes.py')


def _openmmlab_missing(device: torch.device) -> Optional[str]:
    """Why the OpenMMLab sections cannot run here (None if they can)."""
    for name in ('mmengine', 'mmdet'):
        try:
            __import__(name)
        except Exception as err:  # noqa: BLE001
            return f'needs {name} ({type(err).__name__}: {err})'
    info = mmcv_info(device)
    if not info['installed']:
        return f'needs mmcv with ops ({info["reason"]})'
    if not info['ops_on_device']:
        hint = (' (mmcv was built without CUDA ops: rerun bash tools/setup_env.sh on this GPU '
                'machine, it builds them when it finds a GPU and nvcc)'
                if device.type == 'cuda' else '')
        return f'mmcv ops do not run on {device}: {info.get("ops_error")}{hint}'
    if not osp.isfile(DEMO_CONFIG):
        return f'config not found: {DEMO_CONFIG} (run from a checkout)'
    return None


def shapes_data(root: str, num_images: int) -> str:
    """Write the synthetic shapes set (``num_images`` train and val images) and
    return its root with a trailing slash."""
    from mmdyn.datasets import make_shapes_coco
    make_shapes_coco(root, num_train=num_images, num_val=num_images)
    return root.rstrip('/') + '/'


def demo_cfg_options(data_root: str) -> Dict[str, object]:
    """Overrides that point the demo config at ``data_root`` (top level and every
    dataloader and evaluator) with in-process loading."""
    options = {'data_root': data_root}
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        options[f'{loader}.dataset.data_root'] = data_root
        options[f'{loader}.num_workers'] = 0
        options[f'{loader}.persistent_workers'] = False
        options[f'{loader}.batch_size'] = 2
    for evaluator in ('val_evaluator', 'test_evaluator'):
        options[f'{evaluator}.ann_file'] = data_root + 'annotations/instances_val.json'
    return options


@_section
def check_maskrcnn(device: torch.device, scale: Scale, work_dir: str) -> dict:
    """One Mask R-CNN A2D2C+ train iteration and one test iteration on ``device``."""
    missing = _openmmlab_missing(device)
    if missing:
        return skipped(missing)
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import MODELS
    from mmengine.runner import Runner

    from mmdyn.engine.config import load_config  # registrations, safe checkpoint loading
    data_root = shapes_data(osp.join(work_dir, 'shapes'), scale.det_images)
    cfg = load_config(DEMO_CONFIG, demo_cfg_options(data_root), init_scope=True)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model = model.to(device)
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    train_batch = next(iter(Runner.build_dataloader(cfg.train_dataloader, seed=0)))
    model.train()
    _sync(device)
    start = time.perf_counter()
    log_vars = model.train_step(train_batch, optim_wrapper)
    _sync(device)
    train_s = time.perf_counter() - start
    losses = {k: float(v) for k, v in log_vars.items()}
    test_batch = next(iter(Runner.build_dataloader(cfg.test_dataloader, seed=0)))
    model.eval()
    start = time.perf_counter()
    with torch.no_grad():
        outputs = model.test_step(test_batch)
    _sync(device)
    test_s = time.perf_counter() - start
    params_device = {str(p.device) for p in model.parameters()}
    detections = [len(o.pred_instances) for o in outputs]
    result = dict(losses=losses, train_iter_s=train_s, test_iter_s=test_s,
                  images=dict(train=len(train_batch['inputs']), test=len(test_batch['inputs'])),
                  detections=detections, model_device=sorted(params_device),
                  has_masks=all('masks' in o.pred_instances for o in outputs))
    problems = [k for k, v in losses.items() if not math.isfinite(v)]
    if problems or len(outputs) != len(test_batch['inputs']) or not result['has_masks']:
        result.update(status='fail', reason=f'non-finite losses {problems} or missing test '
                      'outputs/masks')
    return result


# ------------------------------------------------------------------------ torchrun
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@_section
def check_torchrun(device: torch.device, scale: Scale, work_dir: str,
                   timeout: float = 600) -> dict:
    """``torchrun --nproc_per_node=1 tools/train.py`` with the demo config for a
    few iterations (NCCL on CUDA, gloo on CPU)."""
    missing = _openmmlab_missing(device)
    if missing:
        return skipped(missing)
    if device.type == 'cuda' and not torch.distributed.is_nccl_available():
        return skipped('this torch has no NCCL')
    data_root = shapes_data(osp.join(work_dir, 'shapes'), scale.det_images)
    run_dir = osp.join(work_dir, 'torchrun')
    iters = scale.torchrun_iters
    options = demo_cfg_options(data_root)
    options.update({'train_cfg.max_iters': iters, 'train_cfg.val_interval': iters + 1,
                    'default_hooks.logger.interval': 1})
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nnodes=1', '--nproc_per_node=1',
           '--master_addr=127.0.0.1', f'--master_port={free_port()}',
           osp.join(ROOT, 'tools', 'train.py'), DEMO_CONFIG, '--launcher', 'pytorch',
           '--work-dir', run_dir, '--cfg-options'] + [f'{k}={v}' for k, v in options.items()]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (ROOT, os.environ.get('PYTHONPATH')) if p), OMP_NUM_THREADS='1')
    if device.type == 'cuda' and device.index is not None:
        env['CUDA_VISIBLE_DEVICES'] = str(device.index)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    seconds = time.perf_counter() - start
    log = proc.stdout + proc.stderr
    backend = re.findall(r"backend='(\w+)'", log)
    expected = 'nccl' if device.type == 'cuda' else 'gloo'
    checkpoint = osp.join(run_dir, f'iter_{iters}.pth')
    result = dict(command=' '.join(cmd[:8] + ['tools/train.py', '...']), returncode=proc.returncode,
                  run_s=seconds, iterations=iters, backend=backend[-1] if backend else None,
                  expected_backend=expected, checkpoint=checkpoint if osp.isfile(checkpoint)
                  else None, distributed='Distributed training: True' in log)
    if (proc.returncode != 0 or not result['checkpoint'] or result['backend'] != expected
            or not result['distributed']):
        tail = '\n'.join(log.strip().splitlines()[-15:])
        result.update(status='fail', reason=f'rc={proc.returncode}, backend={result["backend"]}'
                      f' (expected {expected}), checkpoint={result["checkpoint"]}', log_tail=tail)
    return result


# -------------------------------------------------------------------------- pytest
@_section
def check_pytest(device: torch.device, timeout: float = 900) -> dict:
    """``pytest tests/ops`` with ``MMDYN_TEST_DEVICE`` = the device (CUDA only)."""
    if device.type == 'cpu':
        return skipped('the CPU layer suite is what CI runs (make test)')
    try:
        import pytest  # noqa: F401
    except ImportError:
        return skipped('pytest is not installed')
    tests = osp.join(ROOT, 'tests', 'ops')
    if not osp.isdir(tests):
        return skipped(f'no test folder {tests} (run from a checkout)')
    env = dict(os.environ, MMDYN_TEST_DEVICE=str(device), PYTHONPATH=os.pathsep.join(
        p for p in (ROOT, os.environ.get('PYTHONPATH')) if p))
    proc = subprocess.run([sys.executable, '-m', 'pytest', tests, '-q', '-p',
                           'no:cacheprovider', '-rs'], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    lines = proc.stdout.strip().splitlines()
    result = dict(returncode=proc.returncode, summary=lines[-1] if lines else '')
    if proc.returncode != 0:
        result.update(status='fail', reason=result['summary'],
                      log_tail='\n'.join(lines[-40:]))
    return result


# -------------------------------------------------------------------------- report
def _fmt(value, spec='.2e'):
    if value is None:
        return '-'
    if isinstance(value, float):
        return 'inf' if math.isinf(value) else format(value, spec)
    return str(value)


def format_report(results: dict) -> str:
    """The human-readable tables of a run (Markdown)."""
    lines = []
    env = results.get('env', {})
    lines.append(f'# mmdyn device check: {env.get("device")} ({env.get("device_name")})')
    lines.append('')
    lines.append(f'torch {env.get("torch")} (CUDA {env.get("torch_cuda")}), torchvision '
                 f'{env.get("torchvision")}, python {env.get("python")}, mmcv '
                 f'{(env.get("mmcv") or {}).get("version", "not installed")}; scale '
                 f'{results.get("scale")}, total {results.get("total_seconds")} s')
    lines.append('')
    lines.append('| section | status | seconds | note |')
    lines.append('|---|---|---|---|')
    for name in SECTIONS:
        if name in results:
            sec = results[name]
            lines.append(f'| {name} | {sec.get("status")} | {sec.get("seconds")} | '
                         f'{sec.get("reason", "")} |')
    layers = results.get('layers', {})
    if layers.get('rows'):
        lines += ['', f'## Layers: device vs CPU (relative error, input {layers["input"]})', '',
                  '| layer | precision | out | grad input | grad params (worst) | tolerance '
                  '(out / grad) | status |', '|---|---|---|---|---|---|---|']
        for r in layers['rows']:
            tol = r['tolerance']
            lines.append(f'| {r["layer"]} | {r["precision"]} | {_fmt(r.get("out_err"))} | '
                         f'{_fmt(r.get("grad_input_err"))} | {_fmt(r.get("grad_param_err"))} '
                         f'({r.get("worst_param") or "-"}) | {tol["out"]:.0e} / '
                         f'{tol["grad"]:.0e} | {r["status"]} |')
    strat = results.get('strategies', {})
    if strat.get('rows'):
        lines += ['', f'## Per-sample strategies, A2D2C+ K={strat["kernel_num"]} '
                  f'M={strat["num_points"]} (ms, median)', '',
                  f'Rule of this device: `{strat["rule"]}`', '',
                  '| shape | B | mode | ' + ' | '.join(TIMED_STRATEGIES) +
                  ' | fastest | auto | auto/fastest | no-maps fastest | no-maps auto |',
                  '|---|---|---|' + '---|' * len(TIMED_STRATEGIES) + '---|---|---|---|---|']
        for r in strat['rows']:
            times = ' | '.join(_fmt(r['ms'].get(s), '.3f') for s in TIMED_STRATEGIES)
            lines.append(f'| {r["channels"]}x{r["size"]}² | {r["batch"]} | {r["mode"]} | '
                         f'{times} | {r["fastest"]} | {r["auto"]} | '
                         f'{_fmt(r["auto_over_fastest"], ".2f")} | {r["fastest_no_maps"]} | '
                         f'{r["auto_no_maps"]} |')
        lines.append('')
        lines.append(f'auto = fastest in {strat["auto_is_fastest"]} cases; geomean '
                     f'auto/fastest {_fmt(strat["geomean_auto_over_fastest"], ".2f")}')
    resnet = results.get('resnet50', {})
    if resnet.get('rows'):
        lines += ['', '## AMP training step', '',
                  '| model | params M | batch | size | step ms | img/s | vs static | peak MB |',
                  '|---|---|---|---|---|---|---|---|']
        for r in resnet['rows']:
            lines.append(f'| {r["model"]} | {_fmt(r.get("params_m"), ".2f")} | {r["batch"]} | '
                         f'{r["size"]} | {_fmt(r.get("step_ms"), ".1f")} | '
                         f'{_fmt(r.get("img_per_s"), ".1f")} | '
                         f'{_fmt(r.get("speed_vs_static"), ".2f")} | '
                         f'{_fmt(r.get("peak_mb"), ".0f")} |')
    det = results.get('maskrcnn', {})
    if det.get('status') == 'ok' or det.get('losses'):
        lines += ['', '## Mask R-CNN A2D2C+ (synthetic shapes)', '',
                  f'train iteration {det["train_iter_s"]:.2f} s, loss '
                  f'{det["losses"].get("loss", float("nan")):.3f}; test iteration '
                  f'{det["test_iter_s"]:.2f} s, detections per image {det["detections"]}']
    run = results.get('torchrun', {})
    if 'returncode' in run:
        lines += ['', '## torchrun', '', f'{run["iterations"]} iterations in {run["run_s"]:.1f}'
                  f' s, backend {run["backend"]}, return code {run["returncode"]}']
    return '\n'.join(lines) + '\n'


def run_checks(device: torch.device, scale_name: str, sections: Sequence[str],
               work_dir: str, log: Callable[[str], None] = print) -> dict:
    """Run the selected sections in order and return every result."""
    scale = SCALES[scale_name]
    results = dict(scale=scale_name, sections=list(sections))
    start = time.perf_counter()
    runners = dict(
        env=lambda: check_env(device),
        layers=lambda: check_layers(device, scale),
        strategies=lambda: check_strategies(device, scale),
        resnet50=lambda: check_resnet(device, scale),
        maskrcnn=lambda: check_maskrcnn(device, scale, work_dir),
        torchrun=lambda: check_torchrun(device, scale, work_dir),
        pytest=lambda: check_pytest(device))
    if 'env' not in sections:
        results['env'] = check_env(device)
    for name in sections:
        log(f'[gpu_check] {name} ...')
        results[name] = runners[name]()
        sec = results[name]
        log(f'[gpu_check] {name}: {sec["status"]} ({sec["seconds"]} s)'
            + (f' - {sec["reason"]}' if sec.get('reason') else ''))
    results['total_seconds'] = round(time.perf_counter() - start, 1)
    results['failed'] = [n for n in sections if results[n]['status'] == 'fail']
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description='mmdyn device self-check: layers device-vs-CPU, per-sample strategies, '
        'ResNet-50 AMP step, Mask R-CNN iteration, torchrun start (table + JSON).')
    parser.add_argument('--device', default='cuda',
                        help='cuda (default), cuda:N, or cpu (small sizes: a self-test)')
    parser.add_argument('--scale', choices=sorted(SCALES),
                        help='problem sizes; default: full on CUDA, small on CPU')
    parser.add_argument('--sections', nargs='+', choices=SECTIONS,
                        default=list(DEFAULT_SECTIONS), metavar='SECTION',
                        help=f'any of {", ".join(SECTIONS)} (default: all but pytest)')
    parser.add_argument('--out', default=osp.join(ROOT, 'outputs', 'gpu_check'),
                        help='folder for gpu_check.json and gpu_check.md')
    parser.add_argument('--threads', type=int, default=0, help='torch CPU threads (0: keep)')
    args = parser.parse_args(argv)
    try:
        device = resolve_device(args.device)
    except DeviceUnavailable as err:
        parser.error(str(err))
    if args.threads < 0:
        parser.error('--threads must be >= 0')
    if args.threads:
        torch.set_num_threads(args.threads)
    scale = args.scale or ('full' if device.type == 'cuda' else 'small')
    sections = [s for s in SECTIONS if s in args.sections]  # canonical order
    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix='mmdyn_gpu_check_') as work_dir:
        results = run_checks(device, scale, sections, work_dir,
                             log=lambda msg: print(msg, file=sys.stderr, flush=True))
    report = format_report(results)
    print(report)
    json_path = osp.join(args.out, 'gpu_check.json')
    with open(json_path, 'w') as f:
        json.dump(results, f, indent=2, default=str)
    with open(osp.join(args.out, 'gpu_check.md'), 'w') as f:
        f.write(report)
    print(f'JSON: {json_path}')
    if results['failed']:
        print(f'FAILED: {", ".join(results["failed"])}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':  # python -m mmdyn.utils.gpu_check: no install needed
    sys.exit(main())
