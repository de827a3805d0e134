"""Safe reading of prediction dumps (``tools/test.py --out RESULTS.pkl``).

MMEngine's ``DumpResults`` metric pickles one dict of tensors, NumPy arrays and
built-in containers per test image. A plain ``pickle.load`` of such a file
would run any code a tampered file names; :func:`load_results` unpickles it
with an allow-list instead (tensors, NumPy arrays / scalars / dtypes, built-in
containers; a nested tensor storage is loaded weights-only) and refuses
everything else, naming it.
"""
import io
import os.path as osp
import pickle
from typing import Any, Callable, Dict

__all__ = ['load_results']


def _allowed_globals() -> Dict[str, Callable]:
    """``module.name`` -> object for everything a prediction dump may reference."""
    import builtins
    import codecs
    import collections

    import torch

    from .checkpoint import ALLOWED_CHECKPOINT_GLOBALS

    def load_storage(data: bytes):
        # torch.storage._load_from_bytes would torch.load these bytes with
        # weights_only=False; they are a nested torch file: load them weights-only.
        return torch.load(io.BytesIO(data), weights_only=True)

    allowed = {
        'torch._utils._rebuild_tensor_v2': torch._utils._rebuild_tensor_v2,
        'torch._utils._rebuild_tensor': torch._utils._rebuild_tensor,
        'torch.storage._load_from_bytes': load_storage,
        'torch.Size': torch.Size,
        'collections.OrderedDict': collections.OrderedDict,
        '_codecs.encode': codecs.encode,  # bytes under pickle protocol 2 (mmengine's dump)
    }
    for name in ('set', 'frozenset', 'slice', 'complex', 'bytearray', 'list', 'dict',
                 'tuple'):
        allowed[f'builtins.{name}'] = getattr(builtins, name)
        allowed[f'__builtin__.{name}'] = getattr(builtins, name)
    for name in dir(torch):
        if isinstance(getattr(torch, name, None), torch.dtype):
            allowed[f'torch.{name}'] = getattr(torch, name)
    for item in ALLOWED_CHECKPOINT_GLOBALS:  # NumPy arrays / scalars / dtypes
        obj, key = item if isinstance(item, tuple) else \
            (item, f'{item.__module__}.{item.__qualname__}')
        allowed[key] = obj
    return allowed


class _ResultsUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals of :func:`_allowed_globals`."""

    def __init__(self, file, path: str):
        super().__init__(file)
        self._path = path
        self._allowed = _allowed_globals()

    def find_class(self, module, name):
        key = f'{module}.{name}'
        if key not in self._allowed:
            raise pickle.UnpicklingError(
                f'refusing to load {self._path}: it references {key!r}, which a prediction '
                f'dump of tools/test.py does not contain (loading it could run code)')
        return self._allowed[key]


def load_results(path: str) -> Any:
    """Unpickle a prediction dump of ``tools/test.py --out`` with the allow-list.

    Args:
        path: The ``.pkl`` file.

    Returns:
        What the file holds (for ``DumpResults``: a list of per-image dicts).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        pickle.UnpicklingError: The file references objects outside the
            allow-list (nothing of it is run).
        ValueError: Not a pickle, or truncated.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'results file not found: {path}')
    with open(path, 'rb') as f:
        try:
            return _ResultsUnpickler(f, path).load()
        except pickle.UnpicklingError:
            raise
        except Exception as err:  # noqa: BLE001 - truncated / not a pickle
            raise ValueError(f'cannot read {path} as a prediction dump: '
                             f'{type(err).__name__}: {err}') from err
