"""Safe loading of MMEngine checkpoints on torch >= 2.6.

torch >= 2.6 loads with ``weights_only=True`` by default, and MMEngine 0.10.7's
own checkpoints then fail to load or resume: besides tensors they store the
message hub's ``HistoryBuffer`` objects and NumPy arrays/scalars. Turning
``weights_only`` off (or setting ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``) would
let any checkpoint run arbitrary code on load. Instead we allow-list exactly
the safe types MMEngine stores (:data:`ALLOWED_CHECKPOINT_GLOBALS`) and replace
MMEngine's local-file checkpoint loader with :func:`load_checkpoint_file`,
which always loads with ``weights_only=True`` and turns failures into clear
errors:

* a checkpoint holding any other pickled object -> :class:`UnsafeCheckpointError`
  naming the offending globals;
* a missing file -> ``FileNotFoundError``; a truncated or corrupt file ->
  ``RuntimeError`` naming the file.

Importing :mod:`mmdyn.models` (what configs put in ``custom_imports``) or
:mod:`mmdyn.engine` installs it.
"""
import os.path as osp
import pickle
import zipfile
from typing import Any, List

import numpy as np
import torch


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint contains pickled objects outside the allow-list."""


def _numpy_globals() -> List[Any]:
    """NumPy functions/classes that array and scalar pickles reference."""
    try:  # numpy >= 2
        from numpy._core import multiarray
        prefix = 'numpy._core.multiarray'
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray
        prefix = 'numpy.core.multiarray'
    items: List[Any] = [np.ndarray, np.dtype]
    for name in ('_reconstruct', 'scalar'):
        fn = getattr(multiarray, name)
        items.append(fn)
        # Pickles written under numpy 1.x name numpy.core.*; accept both spellings.
        items.append((fn, f'numpy.core.multiarray.{name}'))
        items.append((fn, f'{prefix}.{name}'))
    # The dtype classes (numpy >= 1.25 pickles dtypes by their class).
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        for name in dir(dtypes):
            obj = getattr(dtypes, name)
            if isinstance(obj, type) and issubclass(obj, np.dtype):
                items.append(obj)
    return items


def _mmengine_globals() -> List[Any]:
    """``HistoryBuffer`` and the one use of ``getattr`` its pickles make.

    ``HistoryBuffer.__getstate__`` stores its statistics methods; pickle
    protocol 2 writes ``HistoryBuffer.min`` as ``getattr(HistoryBuffer, 'min')``.
    Allowing the real ``builtins.getattr`` would let a checkpoint fetch any
    attribute of any allowed object, so the name ``builtins.getattr`` is mapped
    to :func:`_history_buffer_getattr`, which returns only those methods.
    """
    try:
        from mmengine.logging.history_buffer import HistoryBuffer
    except ImportError:  # mmengine absent: nothing of its own to allow
        return []
    return [HistoryBuffer, (_history_buffer_getattr, 'builtins.getattr'),
            (_history_buffer_getattr, '__builtin__.getattr')]


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """``getattr`` restricted to ``HistoryBuffer``'s statistics methods."""
    from mmengine.logging.history_buffer import HistoryBuffer
    if obj is HistoryBuffer and isinstance(name, str) and not name.startswith('_'):
        attr = getattr(HistoryBuffer, name, None)
        if attr is not None and (name in ('min', 'max', 'current', 'mean')
                                 or attr in HistoryBuffer._statistics_methods.values()):
            return attr
    raise UnsafeCheckpointError(f'checkpoint asks for attribute {name!r} of {obj!r}; '
                                f'{_GETATTR_REFUSAL}')


_GETATTR_REFUSAL = 'only the statistics methods of HistoryBuffer may be referenced'


#: Everything added to torch's weights-only allow-list.
ALLOWED_CHECKPOINT_GLOBALS: List[Any] = _numpy_globals() + _mmengine_globals()


def load_checkpoint_file(filename: str, map_location=None) -> Any:
    """Load a local checkpoint with ``weights_only=True`` and clear errors.

    Args:
        filename: Path of the checkpoint (``~`` expanded).
        map_location: As ``torch.load``.

    Raises:
        FileNotFoundError: The file does not exist.
        UnsafeCheckpointError: It contains pickled objects that are not
            allow-listed (nothing of it is executed).
        RuntimeError: It is truncated or not a torch checkpoint.
    """
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint file not found: {filename}')
    try:
        return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        message = str(err)
        reason = [line.strip() for line in message.splitlines()
                  if 'GLOBAL' in line or _GETATTR_REFUSAL in line]
        if not reason:
            lines = [line.strip() for line in message.splitlines() if line.strip()]
            detail = next((line for line in lines if 'Unsupported' in line), lines[-1])
            raise RuntimeError(f'checkpoint {filename} is corrupt or truncated (not a '
                               f'loadable torch checkpoint): {detail}') from err
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(filename)
        except Exception:  # legacy (non-zip) format: torch's message names the global
            unsafe = []
        names = ', '.join(unsafe) if unsafe else reason[0]
        raise UnsafeCheckpointError(
            f'refusing to load checkpoint {filename}: it contains pickled objects that '
            f'are not allow-listed for weights-only loading ({names}). Loading it could '
            'run arbitrary code. If you trust the file, convert it to a plain '
            'state_dict first.') from err
    except (zipfile.BadZipFile, EOFError, RuntimeError, IndexError, KeyError, ValueError,
            TypeError, AttributeError) as err:
        # Garbage bytes make torch's legacy unpickler fail in many ways
        # (e.g. ``IndexError: pop from empty list`` for a text file).
        raise RuntimeError(f'checkpoint {filename} is corrupt or truncated '
                           f'({type(err).__name__}: {err})') from err


def install_safe_checkpoint_loading() -> None:
    """Allow-list MMEngine's safe checkpoint types and route MMEngine's local
    checkpoint loading through :func:`load_checkpoint_file`. Idempotent."""
    torch.serialization.add_safe_globals(ALLOWED_CHECKPOINT_GLOBALS)
    try:
        from mmengine.runner.checkpoint import CheckpointLoader
    except ImportError:
        return

    def _load_from_local(filename, map_location=None):
        return load_checkpoint_file(filename, map_location)

    CheckpointLoader.register_scheme(prefixes='', loader=_load_from_local, force=True)


install_safe_checkpoint_loading()
