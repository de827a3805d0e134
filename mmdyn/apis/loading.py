""":func:`load_model`: build the model of a config, load a checkpoint into it
and wrap it in the task's :class:`~mmdyn.apis.Predictor`.

Two details that a plain ``init_model`` misses are handled here:

* Temperature: every mmdyn layer stores its attention temperature in the
  checkpoint, so the model predicts with the trained value (the same as mmdet's
  ``init_detector`` or mmpretrain's inferencers). Only for a checkpoint written
  before mmdyn stored it (the layers warn) is the config's
  ``TemperatureAnnealHook`` ``end_temperature`` applied, as ``tools/test.py``
  does through the hook's ``before_test``.
* Class names: see :mod:`mmdyn.apis.class_names`.
"""
import os
import os.path as osp
import warnings
from typing import Optional

import torch

from mmdyn.engine.config import load_config
from mmdyn.utils.state_dict import model_state_of
from .class_names import model_num_classes, resolve_class_names, test_dataset_cfg
from .predictor import Predictor
from .tasks import predictor_class

__all__ = ['load_model']


def _ensure_test_pipeline(cfg, dataset_type: str) -> None:
    """Make sure ``cfg.test_dataloader.dataset.pipeline`` exists (the
    frameworks' inference helpers read it); a top-level ``test_pipeline`` is
    used when the config has no test dataloader, with a ``dataset_type``
    dataset when the config names none (the helpers look it up for its
    ``METAINFO``)."""
    dataset = test_dataset_cfg(cfg)
    if isinstance(dataset, dict) and dataset.get('pipeline'):
        return
    if cfg.get('test_pipeline'):
        base = dict(cfg.get('test_dataloader') or {})
        ds = dict(base.get('dataset') or {})
        ds['pipeline'] = cfg.test_pipeline
        ds.setdefault('type', dataset_type)
        base['dataset'] = ds
        cfg.test_dataloader = base
        return
    raise ValueError(f'config {cfg.filename} defines no test pipeline: inference needs '
                     f'test_dataloader.dataset.pipeline (or test_pipeline)')


def _load_weights(model: torch.nn.Module, checkpoint: str, strict: bool) -> dict:
    """Load ``checkpoint`` into ``model``; return the checkpoint's ``meta``.

    ``checkpoint`` is a local file or any source MMEngine accepts (URL,
    ``torchvision://``, ...), read by :func:`mmdyn.engine.read_checkpoint`
    (weights-only allow-list load); ``module.`` prefixes are stripped
    (:func:`mmdyn.utils.state_dict.model_state_of`).

    Raises:
        FileNotFoundError / RuntimeError / UnsafeCheckpointError: from
            :func:`mmdyn.engine.read_checkpoint` (missing, corrupt, unsafe).
        ValueError: The checkpoint holds no state dict (e.g. a list or a bare
            tensor: :class:`mmdyn.engine.InvalidCheckpointError`) or shares no
            parameter with the model.
        mmdyn.engine.InvalidTemperatureError: An attention temperature of the
            checkpoint is invalid for its layer (names the file and the layer).
        mmdyn.engine.CheckpointMismatchError: (``strict``) it misses, adds or
            reshapes some key (:func:`mmdyn.engine.check_state_dict_fits`).
    """
    from mmdyn.engine import (CheckpointMismatchError, InvalidCheckpointError,
                              check_state_dict_fits, read_checkpoint)
    from mmdyn.engine.checkpoint import check_checkpoint_temperatures, require_checkpoint_dict
    ckpt = require_checkpoint_dict(read_checkpoint(checkpoint, map_location='cpu'), checkpoint)
    state = model_state_of(ckpt)
    if not any(torch.is_tensor(v) for v in state.values()):
        raise InvalidCheckpointError(f'checkpoint {checkpoint} holds no state dict of tensors')
    own = model.state_dict()
    common = own.keys() & state.keys()
    if not common:
        raise ValueError(f'checkpoint {checkpoint} does not belong to this model: no '
                         f'parameter name in common (model: {sorted(own)[:3]}..., '
                         f'checkpoint: {sorted(state)[:3]}...)')
    shape = set()
    try:
        check_state_dict_fits(model, state, source=f'checkpoint {checkpoint}')
    except CheckpointMismatchError as err:
        if strict:
            raise CheckpointMismatchError(
                f'{err} (load_model(..., strict=False) or --allow-partial-checkpoint loads '
                'what matches)', err.missing, err.unexpected, err.mismatched) from None
        warnings.warn(f'{err}; loading what matches')
        shape = {key for key, _, _ in err.mismatched}
    check_checkpoint_temperatures(model, state, source=f'checkpoint {checkpoint}')
    model.load_state_dict({k: v for k, v in state.items() if k in common and k not in shape},
                          strict=False)
    return ckpt.get('meta') or {}


def _check_device(device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f'invalid device {device!r}: {err}') from None
    if dev.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f'device {device!r} requested but CUDA is not available')
    return dev


def load_model(config, checkpoint: Optional[str] = None, device: str = 'cpu',
               cfg_options: Optional[dict] = None, strict: bool = True) -> Predictor:
    """Build the model of ``config``, load ``checkpoint`` and wrap it for inference.

    Args:
        config: Config file path (or an ``mmengine.Config``) of an MMPretrain
            classifier (``default_scope='mmpretrain'``) or an MMDetection
            detector (``'mmdet'``); read by :func:`mmdyn.engine.load_config`.
        checkpoint: Checkpoint file (an MMEngine checkpoint or a plain state
            dict, ``module.`` prefixes stripped), or a URL / MMEngine prefix
            (``https://``, ``torchvision://``, ...; downloaded into the torch
            hub cache). Always loaded weights-only. ``None`` keeps the
            constructor's random initialisation.
        device: ``'cpu'``, ``'cuda'``, ``'cuda:1'``, ... Default ``'cpu'``.
        cfg_options: Overrides merged into the config (as ``--cfg-options``).
        strict: Refuse a checkpoint whose parameter names or shapes differ from
            the model's (default; :func:`mmdyn.engine.check_state_dict_fits`,
            keys a layer declares optional excepted). ``False`` loads what
            matches, with a warning giving the same summary.

    Returns:
        The config's :class:`~mmdyn.apis.ClassificationPredictor` or
        :class:`~mmdyn.apis.DetectionPredictor` (:func:`mmdyn.apis.predictor_class`),
        model in eval mode.

    Raises:
        FileNotFoundError: The config or the checkpoint does not exist.
        ValueError: Unsupported ``default_scope``, no test pipeline, a checkpoint
            that does not fit the model, or a bad device.
        RuntimeError: A corrupt or truncated checkpoint (names the file).
        mmdyn.engine.UnsafeCheckpointError: A checkpoint with pickled objects
            outside the weights-only allow-list.
    """
    from mmengine.registry import DefaultScope
    cfg = load_config(config, cfg_options, require_model=True)
    cls = predictor_class(cfg)
    dev = _check_device(device)
    if checkpoint is not None:
        checkpoint = os.fspath(checkpoint)
        if '://' not in checkpoint and not osp.isfile(checkpoint):
            raise FileNotFoundError(f'checkpoint file not found: {checkpoint}')
    _ensure_test_pipeline(cfg, cls.default_dataset_type)
    with DefaultScope.overwrite_default_scope(cls.scope):
        model = cls.build_model(cfg)
        meta = _load_weights(model, checkpoint, strict) if checkpoint else {}
        classes, source = resolve_class_names(cfg, model_num_classes(model), meta)
    return cls(cfg, model, classes, source, checkpoint, dev)
