"""State-dict plumbing shared by checkpoint loading, inflation and inference
(pure PyTorch).

Checkpoint key upgrades: a part of mmdyn that renamed its parameters registers a
function with :func:`register_key_upgrade` (e.g. :mod:`mmdyn.models` maps the
block-plugin keys of older checkpoints); :func:`model_state_of` applies every
registered upgrade, so each reader (inference, the fit checks, inflation) sees
current key names.
"""
from collections import OrderedDict
from typing import Any, Callable, Dict, Iterable, List, Mapping

import torch.nn as nn

__all__ = ['model_state_of', 'strip_prefix', 'register_key_upgrade', 'upgrade_keys',
           'unwrap_model', 'optional_state_keys']

KeyUpgrade = Callable[[Mapping[str, Any]], Mapping[str, Any]]
_KEY_UPGRADES: List[KeyUpgrade] = []


def register_key_upgrade(fn: KeyUpgrade) -> KeyUpgrade:
    """Register ``fn(state_dict) -> state_dict`` (renames of older key names);
    usable as a decorator. Registering the same function twice is a no-op."""
    if fn not in _KEY_UPGRADES:
        _KEY_UPGRADES.append(fn)
    return fn


def upgrade_keys(state_dict: Mapping[str, Any]) -> 'OrderedDict[str, Any]':
    """``state_dict`` with every registered key upgrade applied (a copy)."""
    state = OrderedDict(state_dict)
    for fn in _KEY_UPGRADES:
        state = OrderedDict(fn(state))
    return state


def unwrap_model(model: nn.Module) -> nn.Module:
    """``model.module`` for a model wrapper (DDP, MMEngine wrappers), else ``model``."""
    try:
        from mmengine.model import is_model_wrapper
        wrapped = is_model_wrapper(model)
    except ImportError:  # torch-only use
        wrapped = isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel))
    return model.module if wrapped else model


def optional_state_keys(model: nn.Module) -> set:
    """State-dict keys a checkpoint may lack: ``prefix + key`` for every
    submodule declaring ``optional_state_keys`` (e.g. an attention temperature
    that older checkpoints do not hold; the layer warns when it is absent), and
    the BatchNorm ``num_batches_tracked`` counters (torch fills them in; they do
    not change evaluation)."""
    out = set()
    for name, module in unwrap_model(model).named_modules():
        prefix = f'{name}.' if name else ''
        for key in getattr(module, 'optional_state_keys', None) or ():
            out.add(prefix + key)
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            out.add(prefix + 'num_batches_tracked')
    return out


def strip_prefix(state_dict: Mapping[str, Any], prefix: str) -> 'OrderedDict[str, Any]':
    """Remove ``prefix`` from every key that starts with it (other keys are kept
    unchanged), e.g. ``'module.'`` (DDP) or ``'backbone.'`` (a whole model)."""
    return OrderedDict((k[len(prefix):] if k.startswith(prefix) else k, v)
                       for k, v in state_dict.items())


def model_state_of(checkpoint, prefixes: Iterable[str] = ('module.',)) -> Dict[str, Any]:
    """The model state dict inside ``checkpoint``.

    Args:
        checkpoint: An MMEngine checkpoint dict (``{'state_dict': ..., 'meta':
            ...}``) or a plain state dict.
        prefixes: Key prefixes stripped in order (default ``'module.'``, the
            DDP wrapper's). Registered key upgrades are applied afterwards.

    Raises:
        TypeError: ``checkpoint`` holds no dict.
    """
    state = checkpoint
    if isinstance(state, dict) and isinstance(state.get('state_dict'), dict):
        state = state['state_dict']
    if not isinstance(state, dict):
        raise TypeError(f'expected a state dict (or a checkpoint dict holding one), got '
                        f'{type(state).__name__}')
    for prefix in prefixes:
        state = strip_prefix(state, prefix)
    return upgrade_keys(state)
