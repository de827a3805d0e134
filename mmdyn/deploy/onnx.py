"""ONNX export of mmdyn models, checked against PyTorch with onnxruntime.

:func:`build_export_model` builds the model of a config, loads a checkpoint
into it (strictly: every key must fit) and wraps what is exported:

* an MMPretrain classifier (``default_scope='mmpretrain'``): the whole network
  from the preprocessed image to the class logits (``model(x, mode='tensor')``);
* an MMDetection detector (``'mmdet'``, e.g. Mask R-CNN): the backbone and the
  neck (``model.extract_feat(x)``); the outputs are the FPN levels. The
  heads, their post-processing and NMS are not exported.

The input is the preprocessed batch ``(N, 3, H, W)`` in float32: the
``data_preprocessor``'s channel order, mean and std (printed by the tool) are
applied before the graph, as in MMDeploy.

:func:`export_onnx` writes the graph; every mmdyn layer takes its batch-agnostic
path while it is traced (:func:`mmdyn.ops.batched_conv.is_exporting`), so with
``dynamic_batch=True`` the graph runs at any batch size.
:func:`compare_with_onnxruntime` runs the file with onnxruntime and PyTorch on
the same random batches and reports the largest differences.
"""
import math
import os
import os.path as osp
import warnings
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from mmdyn.utils.output_paths import atomic_output

__all__ = [
    'EXPORTERS', 'DEFAULT_OPSET', 'DEFAULT_RTOL', 'ExportModel', 'Comparison',
    'ClassifierExport', 'BackboneNeckExport', 'build_export_model', 'export_onnx',
    'compare_with_onnxruntime', 'onnx_opset'
]

#: ``torchscript``: ``torch.onnx.export(dynamo=False)`` (needs only ``onnx``);
#: ``dynamo``: the ``torch.export``-based exporter (also needs ``onnxscript``).
EXPORTERS = ('torchscript', 'dynamo')
#: Default ONNX opset per exporter (the dynamo exporter writes 18 natively; its
#: conversion to older opsets fails for some graphs and then keeps 18).
DEFAULT_OPSET = {'torchscript': 17, 'dynamo': 18}
#: Default tolerance: ``max|onnx - torch| / max|torch|`` per output.
DEFAULT_RTOL = 1e-4
#: Input size ``(H, W)`` when none is given: classifiers 224x224; detectors
#: 800x1344 (MMDeploy's static Mask R-CNN shape; a multiple of 32).
DEFAULT_HW = {'classification': (224, 224), 'detection': (800, 1344)}


class ClassifierExport(nn.Module):
    """A classifier from the preprocessed batch to the class logits."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x, mode='tensor')


class BackboneNeckExport(nn.Module):
    """A detector's backbone and neck: the preprocessed batch to the feature
    levels (a tuple, e.g. the 5 FPN levels of Mask R-CNN)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        feats = self.model.extract_feat(x)
        return tuple(feats) if isinstance(feats, (list, tuple)) else (feats, )


@dataclass
class ExportModel:
    """What :func:`build_export_model` returns.

    Attributes:
        module: The wrapper to export (eval mode, on the CPU).
        task: ``'classification'`` or ``'detection'``.
        input_shape: ``(C, H, W)`` of one preprocessed image.
        output_names: Names given to the graph outputs.
        preprocess: The ``data_preprocessor`` settings the input must follow
            (``mean``, ``std``, ``bgr_to_rgb``, ``pad_size_divisor`` when set).
        config: The config file.
        checkpoint: The checkpoint file.
    """
    module: nn.Module
    task: str
    input_shape: Tuple[int, int, int]
    output_names: List[str]
    preprocess: dict = field(default_factory=dict)
    config: Optional[str] = None
    checkpoint: Optional[str] = None


@dataclass
class Comparison:
    """onnxruntime against PyTorch for one batch size (worst output).

    Attributes:
        batch: Batch size.
        max_abs: Largest ``|onnx - torch|`` over all outputs.
        max_rel: Largest ``max|onnx - torch| / max|torch|`` over the outputs.
        worst_output: Name of the output where ``max_rel`` was found.
        not_run: Why the batch was not compared (None when it was): a model
            that PyTorch itself cannot run on an empty batch (e.g. a classifier
            whose neck flattens with ``view(B, -1)``) is not required to run
            on one as a graph either.
    """
    batch: int
    max_abs: float
    max_rel: float
    worst_output: str
    not_run: Optional[str] = None


def _check_hw(input_hw) -> Tuple[int, int]:
    try:
        h, w = (int(v) for v in input_hw)
    except (TypeError, ValueError):
        raise ValueError(f'input size must be two integers (H, W), got {input_hw!r}') from None
    if h < 1 or w < 1:
        raise ValueError(f'input size must be positive (H, W), got {input_hw!r}')
    return h, w


def _preprocess_settings(model: nn.Module) -> dict:
    pre = getattr(model, 'data_preprocessor', None)
    out = {}
    for name in ('mean', 'std'):
        value = getattr(pre, name, None)
        if torch.is_tensor(value):
            out[name] = [round(float(v), 4) for v in value.flatten()]
    for name in ('_channel_conversion', 'bgr_to_rgb', 'rgb_to_bgr'):
        if hasattr(pre, name):
            out['bgr_to_rgb' if name == '_channel_conversion' else name] = bool(
                getattr(pre, name))
            break
    divisor = getattr(pre, 'pad_size_divisor', None)
    if isinstance(divisor, int) and divisor > 1:
        out['pad_size_divisor'] = divisor
    return out


def build_export_model(config, checkpoint: str, input_hw: Optional[Sequence[int]] = None,
                       cfg_options: Optional[dict] = None) -> ExportModel:
    """Build the model of ``config``, load ``checkpoint`` and wrap it for export.

    Args:
        config: Config file (or an ``mmengine.Config``) of an MMPretrain
            classifier or an MMDetection detector (``default_scope``).
        checkpoint: Checkpoint file, loaded with MMEngine's ``load_checkpoint``
            (``strict=True``; mmdyn's weights-only loader).
        input_hw: ``(H, W)`` of the exported input; default
            :data:`DEFAULT_HW` of the task.
        cfg_options: Overrides merged into the config.

    Returns:
        An :class:`ExportModel` (eval mode, CPU).

    Raises:
        FileNotFoundError: Missing config or checkpoint.
        ValueError: No ``model`` in the config, unsupported ``default_scope`` or
            bad ``input_hw``.
        RuntimeError: The checkpoint does not fit the model (MMEngine's strict
            load names the missing / unexpected / mismatched keys).
        mmdyn.engine.NonFiniteCheckpointError: (a ``ValueError``) The checkpoint
            holds NaN/inf values (how many, in which tensors).
    """
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmengine.runner import load_checkpoint

    from mmdyn.apis import task_of_config
    from mmdyn.engine.checkpoint import check_finite_checkpoint
    from mmdyn.engine.config import load_config

    config_path = config.filename if isinstance(config, Config) else os.fspath(config)
    cfg = load_config(config, cfg_options, require_model=True, data_root=False)
    checkpoint = os.fspath(checkpoint)
    if '://' not in checkpoint and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint file not found: {checkpoint}')
    task = task_of_config(cfg)
    h, w = _check_hw(DEFAULT_HW[task] if input_hw is None else input_hw)
    scope = cfg.get('default_scope', 'mmdet')
    if cfg.get('data_preprocessor') is not None:  # a top-level one, as the Runner merges it
        cfg.model.setdefault('data_preprocessor', cfg.data_preprocessor)
    with DefaultScope.overwrite_default_scope(scope):
        if task == 'classification':
            from mmpretrain.registry import MODELS
        else:
            from mmdet.registry import MODELS
        model = MODELS.build(cfg.model)
        load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
    # NaN/inf weights would make every output NaN and the onnxruntime check blame the export.
    check_finite_checkpoint(model.state_dict(), f'checkpoint {checkpoint}')
    model = model.cpu().eval()
    if task == 'classification':
        module = ClassifierExport(model)
    else:
        if not hasattr(model, 'extract_feat'):
            raise ValueError(f'detector {type(model).__name__} has no extract_feat; cannot '
                             'export its backbone and neck')
        module = BackboneNeckExport(model)
    module.eval()
    if task == 'classification':
        names = ['logits']
    else:  # as many outputs as the neck has levels
        with torch.no_grad():
            names = [f'feat{i}' for i in range(len(module(torch.zeros(1, 3, h, w))))]
    return ExportModel(module, task, (3, h, w), names, _preprocess_settings(model),
                       config_path, checkpoint)


def _check_onnx_installed(exporter: str) -> None:
    missing = []
    for name in ('onnx', ) + (('onnxscript', ) if exporter == 'dynamo' else ()):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ImportError(f'ONNX export with the {exporter} exporter needs the package(s) '
                          f'{", ".join(missing)}: pip install {" ".join(missing)}')


def export_onnx(module: nn.Module, out: str, input_shape: Sequence[int],
                output_names: Sequence[str], dynamic_batch: bool = False,
                opset: Optional[int] = None, exporter: str = 'torchscript',
                input_name: str = 'input') -> str:
    """Export ``module`` (one image batch in, a tensor or a tuple out) to ONNX.

    The file is written to a temporary name next to ``out`` and renamed when
    complete, so a failed export leaves no partial file.

    Args:
        module: The model (eval mode), e.g. :attr:`ExportModel.module`.
        out: The ``.onnx`` file to write.
        input_shape: ``(C, H, W)``.
        output_names: One name per output.
        dynamic_batch: Make the batch axis dynamic (traced at batch 2);
            otherwise the graph is fixed to batch 1.
        opset: ONNX opset version; None: :data:`DEFAULT_OPSET` of the exporter
            (read the written one with :func:`onnx_opset`).
        exporter: One of :data:`EXPORTERS`.
        input_name: Name of the graph input.

    Returns:
        ``out``.

    Raises:
        ValueError: Bad ``exporter`` / ``opset`` / ``input_shape``, or a
            graph whose batch axis came out fixed although ``dynamic_batch``.
        ImportError: ``onnx`` (or ``onnxscript`` for dynamo) missing.
    """
    if exporter not in EXPORTERS:
        raise ValueError(f'unknown exporter {exporter!r}; expected one of {list(EXPORTERS)}')
    opset = DEFAULT_OPSET[exporter] if opset is None else opset
    if not isinstance(opset, int) or isinstance(opset, bool) or not 9 <= opset <= 25:
        raise ValueError(f'opset must be an int in [9, 25], got {opset!r}')
    if len(input_shape) != 3 or min(int(s) for s in input_shape) < 1:
        raise ValueError(f'input_shape must be (C, H, W) with positive sizes, got '
                         f'{tuple(input_shape)}')
    _check_onnx_installed(exporter)
    import onnx

    out = os.fspath(out)
    folder = osp.dirname(osp.abspath(out))
    os.makedirs(folder, exist_ok=True)
    x = torch.randn(2 if dynamic_batch else 1, *(int(s) for s in input_shape))
    # renamed over ``out`` with the umask's mode (not mkstemp's 0600) once the graph checks
    with atomic_output(out, suffix='.onnx', prefix='.export-') as tmp:
        with warnings.catch_warnings():
            # shape checks of the layers (constant channels) and the legacy-exporter
            # notice; the onnxruntime comparison is what vouches for the graph.
            warnings.simplefilter('ignore', torch.jit.TracerWarning)
            warnings.filterwarnings('ignore', message='.*legacy TorchScript-based ONNX')
            kwargs = dict(input_names=[input_name], output_names=list(output_names),
                          opset_version=opset)
            if exporter == 'torchscript':
                axes = {n: {0: 'batch'} for n in [input_name, *output_names]}
                torch.onnx.export(module, (x, ), tmp, dynamo=False,
                                  dynamic_axes=axes if dynamic_batch else None,
                                  do_constant_folding=True, **kwargs)
            else:
                shapes = ({0: torch.export.Dim('batch', min=1)}, ) if dynamic_batch else None
                torch.onnx.export(module, (x, ), tmp, dynamo=True, dynamic_shapes=shapes,
                                  external_data=False, verbose=False, **kwargs)
        graph = onnx.load(tmp, load_external_data=False).graph
        dim = graph.input[0].type.tensor_type.shape.dim[0]
        if dynamic_batch and not dim.dim_param:
            raise ValueError(f'the exported graph has a fixed batch size ({dim.dim_value}) '
                             'although a dynamic batch was requested')
    return out


def onnx_opset(onnx_file: str) -> int:
    """The default-domain opset version written in ``onnx_file``."""
    import onnx
    model = onnx.load(os.fspath(onnx_file), load_external_data=False)
    return next((o.version for o in model.opset_import if o.domain in ('', 'ai.onnx')), 0)


def compare_with_onnxruntime(module: nn.Module, onnx_file: str, input_shape: Sequence[int],
                             batches: Sequence[int] = (1, 3), seed: int = 0
                             ) -> List[Comparison]:
    """Run ``onnx_file`` with onnxruntime (CPU) and ``module`` with PyTorch on
    the same random batches ``(b, *input_shape)``, standard normal like a
    preprocessed image.

    A batch of 0 is compared by shape (the outputs are empty); where PyTorch
    itself cannot run ``module`` on an empty batch, that batch is reported
    (:attr:`Comparison.not_run`) instead of compared.

    Returns:
        One :class:`Comparison` per batch size.

    Raises:
        ImportError: onnxruntime is not installed.
        RuntimeError: onnxruntime cannot run the graph at a batch size that
            PyTorch runs (the message names the batch and onnxruntime's error),
            or the outputs differ in number or shape.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise ImportError('the onnxruntime check needs onnxruntime: pip install '
                          'onnxruntime') from None
    session = ort.InferenceSession(os.fspath(onnx_file), providers=['CPUExecutionProvider'])
    input_name = session.get_inputs()[0].name
    names = [o.name for o in session.get_outputs()]
    gen = torch.Generator().manual_seed(seed)
    results = []
    for batch in batches:
        x = torch.randn(batch, *(int(s) for s in input_shape), generator=gen)
        try:
            with torch.no_grad():
                ref = module(x)
        except (RuntimeError, ValueError) as err:
            if batch:
                raise
            why = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            results.append(Comparison(0, math.nan, math.nan, names[0], not_run=(
                f'PyTorch itself cannot run this model on an empty batch ({why})')))
            continue
        ref = [ref] if torch.is_tensor(ref) else list(ref)
        try:
            got = session.run(None, {input_name: x.numpy()})
        except Exception as err:  # onnxruntime's own error types (Fail, InvalidArgument...)
            why = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise RuntimeError(f'onnxruntime cannot run {onnx_file} at batch {batch}, which '
                               f'PyTorch runs: {why}') from None
        if len(got) != len(ref):
            raise RuntimeError(f'{onnx_file} has {len(got)} outputs, PyTorch gives {len(ref)}')
        worst = Comparison(batch, 0.0, 0.0, names[0])
        for name, r, g in zip(names, ref, got):
            g = torch.from_numpy(g)
            if tuple(g.shape) != tuple(r.shape):
                raise RuntimeError(f'output {name}: onnxruntime gives shape {tuple(g.shape)}, '
                                   f'PyTorch {tuple(r.shape)} (batch {batch})')
            diff = float((g.double() - r.double()).abs().max()) if r.numel() else 0.0
            scale = float(r.double().abs().max()) if r.numel() else 0.0
            if not (math.isfinite(diff) and math.isfinite(scale)):  # NaN/inf never passes
                diff = scale = math.inf
            rel = diff / scale if 0 < scale < math.inf else diff
            worst.max_abs = max(worst.max_abs, diff)
            if rel >= worst.max_rel:
                worst.max_rel, worst.worst_output = rel, name
        results.append(worst)
    return results
