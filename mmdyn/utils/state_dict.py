"""State-dict plumbing shared by checkpoint loading, inflation and inference
(pure PyTorch)."""
from collections import OrderedDict
from typing import Any, Dict, Iterable, Mapping

__all__ = ['model_state_of', 'strip_prefix']


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
            DDP wrapper's).

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
    return OrderedDict(state)
