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
* a missing file -> ``FileNotFoundError``; an empty, truncated or corrupt
  file -> ``RuntimeError`` naming the file; MMEngine's loaders also refuse a
  file that holds no dict (a list, a bare tensor) -> ``ValueError``.

Every such error is an :class:`~mmdyn.utils.checkpoint_errors.CheckpointError`
(of the built-in type above) with a one-line message naming the file, which a
tool prints as ``error: ...``.

Every other checkpoint source MMEngine 0.10.7 accepts ends in the same
weights-only load (:func:`install_safe_checkpoint_loading`):

* ``http://`` / ``https://``: downloaded into the torch hub cache
  (``<torch.hub.get_dir()>/checkpoints``), one folder per URL
  (:func:`url_cache_path`: the SHA-256 of the whole normalised URL, so two URLs
  with the same file name never share a file), and loaded from there with
  :func:`load_checkpoint_file`; a cached copy is loaded the same way
  (:func:`load_checkpoint_url`). MMEngine's module-level ``load_from_http``
  and ``load_url`` are replaced too, so its ``torchvision://``/``modelzoo://``,
  ``open-mmlab://``/``openmmlab://`` and ``mmcls://`` loaders (which call
  ``load_from_http`` directly) download through it.
* every other registered scheme (those prefixes, ``pavi://``, ``s3://``,
  ``petrel://`` and any scheme registered later, however registered) runs with
  ``torch.load`` forced to the weights-only allow-list load for the duration of
  the call (:func:`weights_only_torch_load`).

Importing :mod:`mmdyn.models` (what configs put in ``custom_imports``) or
:mod:`mmdyn.engine` installs it.

:func:`check_state_dict_fits` compares a checkpoint with a model (missing,
unexpected and shape-mismatched keys) and raises
:class:`CheckpointMismatchError`; :func:`check_checkpoint_values` refuses
invalid attention temperatures and NaN/inf values
(:class:`~mmdyn.utils.checkpoint_errors.NonFiniteCheckpointError`);
:class:`CheckpointFitHook` runs both inside an MMEngine ``Runner`` before the
weights are loaded (``tools/test.py``).
"""
import contextlib
import functools
import hashlib
import io
import os
import os.path as osp
import pickle
import shutil
import sys
import threading
import zipfile
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import torch
import torch.nn as nn

from mmdyn.utils.checkpoint_errors import (CheckpointDownloadError, CheckpointError,
                                           CheckpointNotFoundError, CheckpointSourceError,
                                           CorruptCheckpointError, InvalidCheckpointError,
                                           InvalidTemperatureError, NonFiniteCheckpointError)
from mmdyn.utils.output_paths import atomic_output
from mmdyn.utils.state_dict import model_state_of, optional_state_keys, unwrap_model  # noqa: F401

try:
    from mmengine.hooks import Hook as _HookBase
except ImportError:  # mmengine absent: the hook is unusable, the rest works
    _HookBase = object

#: ``torch.load`` as torch defines it, captured before any temporary patching.
_TORCH_LOAD = torch.serialization.load


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
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
        CheckpointNotFoundError: (a ``FileNotFoundError``) The file does not
            exist or is a folder.
        UnsafeCheckpointError: It contains pickled objects that are not
            allow-listed (nothing of it is executed).
        CorruptCheckpointError: (a ``RuntimeError``) It is empty, truncated
            or not a torch checkpoint.
    """
    filename = osp.expanduser(os.fspath(filename))
    if osp.isdir(filename):
        raise CheckpointNotFoundError(f'checkpoint {filename} is a folder, not a file')
    if not osp.isfile(filename):
        raise CheckpointNotFoundError(f'checkpoint file not found: {filename}')
    if osp.getsize(filename) == 0:
        raise CorruptCheckpointError(f'checkpoint {filename} is empty (0 bytes), not a torch '
                                     'checkpoint')
    return _weights_only_load(filename, filename, map_location)


def load_checkpoint_bytes(data: bytes, name: str, map_location=None) -> Any:
    """Load a checkpoint held in memory (e.g. read from object storage) with
    ``weights_only=True``; ``name`` (its path or URL) is used in errors."""
    return _weights_only_load(io.BytesIO(data), name, map_location)


def _weights_only_load(source, name: str, map_location=None) -> Any:
    """``torch.load(source, weights_only=True)`` with the errors of
    :func:`load_checkpoint_file` (``source``: a path or a seekable stream)."""
    try:
        return _TORCH_LOAD(source, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        message = str(err)
        reason = [line.strip() for line in message.splitlines()
                  if 'GLOBAL' in line or _GETATTR_REFUSAL in line]
        if not reason:
            lines = [line.strip() for line in message.splitlines() if line.strip()]
            detail = next((line for line in lines if 'Unsupported' in line),
                          lines[-1] if lines else type(err).__name__)
            raise CorruptCheckpointError(f'checkpoint {name} is corrupt or truncated (not a '
                                         f'loadable torch checkpoint): {detail}') from err
        try:
            if hasattr(source, 'seek'):
                source.seek(0)
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(source)
        except Exception:  # legacy (non-zip) format: torch's message names the global
            unsafe = []
        names = ', '.join(unsafe) if unsafe else reason[0]
        raise UnsafeCheckpointError(
            f'refusing to load checkpoint {name}: it contains pickled objects that '
            f'are not allow-listed for weights-only loading ({names}). Loading it could '
            'run arbitrary code. If you trust the file, convert it to a plain '
            'state_dict first.') from err
    except (PermissionError, FileNotFoundError, IsADirectoryError, MemoryError):
        raise  # unreadable, or too large for memory: not corrupt
    except Exception as err:  # noqa: BLE001
        # Garbage bytes make torch's legacy unpickler fail in many ways
        # (e.g. ``IndexError: pop from empty list`` for a text file,
        # ``OverflowError``, ``UnicodeDecodeError``; a truncated zip checkpoint
        # ``OSError: [Errno 22] Invalid argument``).
        detail = ' '.join(str(err).split())[:200]
        raise CorruptCheckpointError(f'checkpoint {name} is corrupt or truncated '
                                     f'({type(err).__name__}: {detail})') from err


# ------------------------------------------------------------------ remote sources
def hub_checkpoint_dir() -> str:
    """Where downloaded checkpoints are cached: ``<torch.hub.get_dir()>/checkpoints``
    (``$TORCH_HOME/hub/checkpoints``, by default ``~/.cache/torch/hub/checkpoints``),
    the directory ``torch.hub.load_state_dict_from_url`` uses."""
    return osp.join(torch.hub.get_dir(), 'checkpoints')


def normalise_url(url: str) -> str:
    """``url`` as the cache keys it: scheme and host in lower case, the default
    port (80 for http, 443 for https) and the fragment (never sent to the
    server) dropped, an empty path written ``/``; the rest (path, query, user
    info) is kept as given, so different URLs stay different keys."""
    parts = urlsplit(str(url))
    scheme = parts.scheme.lower()
    userinfo, at, hostport = parts.netloc.rpartition('@')
    hostport = hostport.lower()
    default = {'http': ':80', 'https': ':443'}.get(scheme)
    if default and hostport.endswith(default):
        hostport = hostport[:-len(default)]
    return urlunsplit((scheme, userinfo + at + hostport, parts.path or '/', parts.query, ''))


def _url_file_name(url: str, file_name: Optional[str] = None) -> str:
    """The name of ``url``'s cached file: ``file_name``, else the last
    component of the URL path; a name that is no plain file name is refused."""
    name = file_name if file_name is not None else urlsplit(url).path.rsplit('/', 1)[-1]
    if name in ('', '.', '..'):
        what = f'its path ends in {"/" + name!r}' if name else 'its path ends in /'
        raise CheckpointSourceError(f'checkpoint URL {url} has no file name ({what}); give '
                                    'the URL of the checkpoint file itself')
    if '/' in name or os.sep in name or '\\' in name or '\0' in name:
        raise CheckpointSourceError(f'invalid cache file name {name!r} for checkpoint URL '
                                    f'{url}: a plain file name is needed')
    return name


def url_cache_path(url: str, model_dir: Optional[str] = None,
                   file_name: Optional[str] = None) -> str:
    """Where :func:`load_checkpoint_url` caches ``url``:
    ``<model_dir>/<sha256 of the normalised URL>/<file name>``.

    The folder is keyed by the whole URL (:func:`normalise_url`), so
    ``http://host/a/model.pth`` and ``http://host/b/model.pth`` never share a
    cached file, while the file keeps the URL's readable name.

    Args:
        url: ``http://`` or ``https://`` URL.
        model_dir: Cache directory (default :func:`hub_checkpoint_dir`).
        file_name: Name of the cached file (default: from the URL).

    Raises:
        CheckpointSourceError: (a ``ValueError``) Not an http(s) URL, or no
            file name in its path (e.g. it ends in ``/`` or ``/..``).
    """
    url = str(url)
    if urlsplit(url).scheme.lower() not in ('http', 'https'):
        raise CheckpointSourceError(f'not an http(s) URL: {url!r}')
    name = _url_file_name(url, file_name)
    key = hashlib.sha256(normalise_url(url).encode('utf-8')).hexdigest()
    return osp.join(model_dir or hub_checkpoint_dir(), key, name)


def load_checkpoint_url(url: str, map_location=None, model_dir: Optional[str] = None,
                        progress: bool = False, file_name: Optional[str] = None) -> Any:
    """Download ``url`` into the hub cache (unless already there) and load the
    cached file with :func:`load_checkpoint_file`.

    Every URL has its own cache folder (:func:`url_cache_path`); the download
    goes to a temporary file in that folder, renamed into place when complete,
    and a single-file legacy zip is extracted inside it too, so one URL's
    download never replaces another URL's file. A cached copy is never trusted
    more than a fresh download: it goes through the weights-only load (an
    unsafe cached file is refused again) on every call.

    Args:
        url: ``http://`` or ``https://`` URL.
        map_location: As ``torch.load``.
        model_dir: Cache directory (default :func:`hub_checkpoint_dir`).
        progress: Show a download progress bar.
        file_name: Name of the cached file (default: from the URL).

    Raises:
        CheckpointSourceError: (a ``ValueError``) Not an http(s) URL, or no
            file name in it.
        CheckpointDownloadError: (a ``RuntimeError``) The download failed
            (names the URL).
        CorruptCheckpointError: (a ``RuntimeError``) The file is corrupt.
        UnsafeCheckpointError: As :func:`load_checkpoint_file` (names the URL
            and the cached file).
    """
    url = str(url)
    cached = url_cache_path(url, model_dir, file_name)
    folder = osp.dirname(cached)
    if not osp.isfile(cached):
        os.makedirs(folder, exist_ok=True)
        sys.stderr.write(f'Downloading: "{url}" to {cached}\n')
        try:  # torch writes a temporary file in ``folder`` and renames it when complete
            torch.hub.download_url_to_file(url, cached, None, progress=progress)
        except OSError as err:  # URLError / HTTPError are OSErrors
            with contextlib.suppress(OSError):
                os.rmdir(folder)  # only if empty: no trace of a failed download
            raise CheckpointDownloadError(
                f'could not download checkpoint {url}: {" ".join(str(err).split())}') from err
        _write_url_note(folder, url)
    try:
        target = _extract_legacy_zip(cached, folder)
        return load_checkpoint_file(target, map_location)
    except UnsafeCheckpointError as err:
        raise UnsafeCheckpointError(f'{err} (downloaded from {url})') from err
    except CorruptCheckpointError as err:
        raise CorruptCheckpointError(f'{err} (downloaded from {url})') from err


def _write_url_note(folder: str, url: str) -> None:
    """Record the URL in its cache folder (``URL``), for whoever looks at the
    cache; best effort, never read back."""
    try:
        with open(osp.join(folder, 'URL'), 'w', encoding='utf-8') as f:
            f.write(url + '\n')
    except OSError:
        pass


def _extract_legacy_zip(cached: str, folder: str) -> str:
    """A pre-1.6 checkpoint zipped by hand (one member) is extracted into the
    ``extracted`` sub-folder of its URL's cache folder (written to a temporary
    file and renamed, once); return the file to load. The member can replace
    neither the archive nor any other URL's file."""
    if not zipfile.is_zipfile(cached):
        return cached
    with zipfile.ZipFile(cached) as zf:
        members = zf.infolist()
        if len(members) != 1 or members[0].is_dir():
            return cached  # a torch >= 1.6 checkpoint (a zip of many records)
        member = members[0]
        out_dir = osp.realpath(osp.join(folder, 'extracted'))
        target = osp.realpath(osp.join(out_dir, member.filename))
        if osp.commonpath([target, out_dir]) != out_dir or target == out_dir:
            raise CorruptCheckpointError(f'checkpoint {cached}: zip member '
                                         f'{member.filename!r} points outside its folder')
        if osp.isfile(target):
            return target
        with atomic_output(target) as tmp, open(tmp, 'wb') as out, zf.open(member) as src:
            shutil.copyfileobj(src, out)
    return target


def _safe_load_from_http(filename, map_location=None, model_dir=None,
                         progress=os.isatty(0)):
    """Safe replacement of MMEngine's ``load_from_http`` (same signature): in a
    distributed run rank 0 downloads first, then every rank loads the cached
    copy with :func:`load_checkpoint_url`."""
    try:
        from mmengine.dist import get_dist_info
        rank, world_size = get_dist_info()
    except ImportError:
        rank, world_size = 0, 1
    kwargs = dict(map_location=map_location, model_dir=model_dir, progress=progress)
    if world_size == 1:
        return require_checkpoint_dict(load_checkpoint_url(filename, **kwargs), filename)
    failure = None
    if rank == 0:
        try:
            checkpoint = load_checkpoint_url(filename, **kwargs)
        except Exception as err:  # pass the barrier so other ranks do not hang
            failure = err
    torch.distributed.barrier()
    if failure is not None:
        raise failure
    if rank > 0:
        checkpoint = load_checkpoint_url(filename, **kwargs)
    return require_checkpoint_dict(checkpoint, filename)


def _safe_load_url(url, model_dir=None, map_location=None, progress=True,
                   check_hash=False, file_name=None, weights_only=None):
    """Safe replacement of ``mmengine.utils.dl_utils.load_url`` (torch.hub's
    ``load_state_dict_from_url``): ``weights_only`` is always True and
    ``check_hash`` is not supported (MMEngine never sets it)."""
    if check_hash:
        raise CheckpointSourceError('check_hash is not supported by mmdyn\'s safe load_url')
    return load_checkpoint_url(url, map_location=map_location, model_dir=model_dir,
                               progress=progress, file_name=file_name)


_guard_lock = threading.RLock()
_guard_depth = 0


def _forced_weights_only_load(f, map_location=None, pickle_module=None, *args,
                              weights_only=None, **kwargs):
    """Stand-in for ``torch.load`` inside :func:`weights_only_torch_load`:
    ``weights_only`` and ``pickle_module`` are ignored (always the allow-list
    load)."""
    if isinstance(f, (str, os.PathLike)):
        return load_checkpoint_file(f, map_location)
    return _weights_only_load(f, getattr(f, 'name', '<stream>'), map_location)


@contextlib.contextmanager
def weights_only_torch_load() -> Iterator[None]:
    """Within the block, every ``torch.load`` call (also with
    ``weights_only=False``, also ``torch.hub.load_state_dict_from_url``) is
    the weights-only allow-list load of :func:`load_checkpoint_file`.
    Re-entrant and thread-safe (the patch stays while any thread is inside)."""
    global _guard_depth
    with _guard_lock:
        if _guard_depth == 0:
            torch.load = _forced_weights_only_load
        _guard_depth += 1
    try:
        yield
    finally:
        with _guard_lock:
            _guard_depth -= 1
            if _guard_depth == 0:
                torch.load = _TORCH_LOAD


def _mark_safe(loader: Callable) -> Callable:
    loader._mmdyn_safe = True
    return loader


def _guarded(loader: Callable) -> Callable:
    """``loader`` run inside :func:`weights_only_torch_load` (keeps its
    ``__name__``: MMEngine logs ``Loads checkpoint by <name[10:]> backend``)."""
    if getattr(loader, '_mmdyn_safe', False):
        return loader

    @functools.wraps(loader)
    def guarded(*args, **kwargs):
        with weights_only_torch_load():
            return loader(*args, **kwargs)

    return _mark_safe(guarded)


def describe_object(obj: Any) -> str:
    """A few words on what a loaded checkpoint object is (for error messages):
    ``'a list of 3 item(s)'``, ``'a bare tensor of shape (2, 3) (torch.float32)'``."""
    if torch.is_tensor(obj):
        return f'a bare tensor of shape {tuple(obj.shape)} ({obj.dtype})'
    if isinstance(obj, (list, tuple, set)):
        return f'a {type(obj).__name__} of {len(obj)} item(s)'
    if obj is None:
        return 'None'
    return f'a {type(obj).__name__}'


def require_checkpoint_dict(checkpoint: Any, name: str) -> dict:
    """Return ``checkpoint`` if it is a dict (an MMEngine checkpoint or a state
    dict), else raise :class:`~mmdyn.utils.checkpoint_errors.InvalidCheckpointError`
    (a ``ValueError``) naming ``name`` and what the file holds."""
    if not isinstance(checkpoint, dict):
        raise InvalidCheckpointError(
            f'checkpoint {name} holds {describe_object(checkpoint)}, not a checkpoint (expected '
            'a dict: an MMEngine checkpoint or a state dict)')
    return checkpoint


def _safe_load_from_local(filename, map_location=None):
    return require_checkpoint_dict(load_checkpoint_file(filename, map_location), filename)


# The names MMEngine logs ("Loads checkpoint by local/http backend").
_safe_load_from_local.__name__ = 'load_from_local'
_safe_load_from_http.__name__ = 'load_from_http'
_mark_safe(_safe_load_from_local)
_mark_safe(_safe_load_from_http)


def read_checkpoint(source: str, map_location=None) -> Any:
    """Load a checkpoint from any source MMEngine accepts (a local file, an
    http(s) URL, ``torchvision://``, ``open-mmlab://``, ``s3://``, ...) through
    the safe loaders (local files without MMEngine too)."""
    source = os.fspath(source)
    if '://' not in source:
        return load_checkpoint_file(source, map_location)
    try:
        from mmengine.runner.checkpoint import CheckpointLoader
    except ImportError:  # without MMEngine: http(s) only
        return load_checkpoint_url(source, map_location=map_location)
    install_safe_checkpoint_loading()
    return CheckpointLoader.load_checkpoint(source, map_location)


def install_safe_checkpoint_loading() -> None:
    """Allow-list MMEngine's safe checkpoint types and route every MMEngine
    checkpoint source through the weights-only load. Idempotent.

    * ``''`` (local files): :func:`load_checkpoint_file`;
    * ``http://``/``https://``: :func:`load_checkpoint_url` (hub cache), also
      installed as ``mmengine.runner.checkpoint.load_from_http`` and as the
      ``load_url`` of ``mmengine.runner.checkpoint`` / ``mmengine.utils.dl_utils``
      so that the ``torchvision://``, ``open-mmlab://`` and ``mmcls://``
      loaders, which call them directly, download safely;
    * every other registered loader: wrapped to run inside
      :func:`weights_only_torch_load`, now and when registered later
      (``CheckpointLoader._register_scheme`` wraps new loaders and
      ``CheckpointLoader._get_checkpoint_loader`` wraps whatever it finds, so
      a loader put into ``_schemes`` by hand is covered too).
    """
    torch.serialization.add_safe_globals(ALLOWED_CHECKPOINT_GLOBALS)
    try:
        from mmengine.runner import checkpoint as mm_ckpt
    except ImportError:
        return
    loader_cls = mm_ckpt.CheckpointLoader
    mm_ckpt.load_from_local = _safe_load_from_local
    mm_ckpt.load_from_http = _safe_load_from_http
    mm_ckpt.load_url = _safe_load_url
    try:
        from mmengine.utils import dl_utils
        dl_utils.load_url = _safe_load_url
    except ImportError:  # pragma: no cover
        pass
    if not getattr(loader_cls, '_mmdyn_safe_installed', False):
        register = loader_cls.__dict__['_register_scheme'].__func__
        get_loader = loader_cls.__dict__['_get_checkpoint_loader'].__func__

        def _register_scheme(cls, prefixes, loader, force=False):
            return register(cls, prefixes, _guarded(loader), force=force)

        def _get_checkpoint_loader(cls, path):
            loader = get_loader(cls, path)
            return None if loader is None else _guarded(loader)

        loader_cls._register_scheme = classmethod(_register_scheme)
        loader_cls._get_checkpoint_loader = classmethod(_get_checkpoint_loader)
        loader_cls._mmdyn_safe_installed = True
    loader_cls.register_scheme(prefixes='', loader=_safe_load_from_local, force=True)
    loader_cls.register_scheme(prefixes=('http://', 'https://'), loader=_safe_load_from_http,
                               force=True)
    for prefix, loader in list(loader_cls._schemes.items()):
        loader_cls._schemes[prefix] = _guarded(loader)


def safe_checkpoint_schemes() -> Dict[str, str]:
    """Every prefix registered in MMEngine's ``CheckpointLoader`` and how it is
    loaded now: ``'weights-only'`` (mmdyn's loaders) or ``'guarded'`` (run
    inside :func:`weights_only_torch_load`); ``'UNSAFE'`` would be a bug."""
    from mmengine.runner.checkpoint import CheckpointLoader
    out = {}
    for prefix, loader in CheckpointLoader._schemes.items():
        if loader in (_safe_load_from_local, _safe_load_from_http):
            out[prefix] = 'weights-only'
        elif getattr(loader, '_mmdyn_safe', False):
            out[prefix] = 'guarded'
        else:
            out[prefix] = 'UNSAFE'
    return out


# -------------------------------------------------------------- does it fit the model
class CheckpointMismatchError(CheckpointError, ValueError):
    """A checkpoint's state dict does not fit the model (missing, unexpected or
    shape-mismatched keys).

    Attributes:
        missing: Model keys the checkpoint lacks (optional keys excluded).
        unexpected: Checkpoint keys the model does not have.
        mismatched: ``(key, checkpoint shape, model shape)`` triples.
    """

    def __init__(self, message: str, missing=(), unexpected=(), mismatched=()):
        super().__init__(message)
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.mismatched = list(mismatched)


def state_dict_mismatch(model: nn.Module, state_dict) -> Tuple[List[str], List[str],
                                                               List[Tuple[str, tuple, tuple]]]:
    """``(missing, unexpected, mismatched)`` keys of ``state_dict`` for
    ``model`` (see :func:`check_state_dict_fits`), each sorted."""
    model = unwrap_model(model)
    state = model_state_of(state_dict)
    own = model.state_dict()
    optional = optional_state_keys(model)
    missing = sorted(k for k in own if k not in state and k not in optional)
    unexpected = sorted(k for k in state if k not in own)
    mismatched = []
    for key in sorted(own.keys() & state.keys()):
        mine, theirs = own[key], state[key]
        if torch.is_tensor(mine) and torch.is_tensor(theirs) and mine.shape != theirs.shape:
            mismatched.append((key, tuple(theirs.shape), tuple(mine.shape)))
    return missing, unexpected, mismatched


def _first(items, n=3) -> str:
    shown = ', '.join(items[:n])
    return f'{shown}, ...' if len(items) > n else shown


def check_state_dict_fits(model: nn.Module, state_dict, source: str = 'checkpoint') -> None:
    """Raise unless ``state_dict`` fits ``model`` exactly.

    The model is unwrapped (DDP & co.) and a ``module.`` prefix of the
    checkpoint keys is stripped (as MMEngine does when loading); a checkpoint
    dict holding ``'state_dict'`` may be passed as is. Keys that a submodule
    declares optional (:func:`optional_state_keys`) may be missing.

    Args:
        model: The model the weights are for.
        state_dict: Its checkpoint (state dict or checkpoint dict).
        source: How to name the checkpoint in the error (e.g. its path).

    Raises:
        CheckpointMismatchError: Some key is missing, unexpected or has another
            shape; the one-line message gives the three counts and the first
            few keys of each.
    """
    missing, unexpected, mismatched = state_dict_mismatch(model, state_dict)
    if not (missing or unexpected or mismatched):
        return
    parts = [f'{len(missing)} missing key(s)' + (f' ({_first(missing)})' if missing else ''),
             f'{len(unexpected)} unexpected key(s)'
             + (f' ({_first(unexpected)})' if unexpected else ''),
             f'{len(mismatched)} key(s) with another shape'
             + (' (' + _first([f'{k}: checkpoint {a} vs model {b}' for k, a, b in mismatched])
                + ')' if mismatched else '')]
    raise CheckpointMismatchError(
        f'{source} does not match the model: ' + ', '.join(parts)
        + f' (model: {type(unwrap_model(model)).__name__})', missing, unexpected, mismatched)


def check_checkpoint_temperatures(model: nn.Module, state_dict,
                                  source: str = 'checkpoint') -> None:
    """Raise unless every attention temperature ``state_dict`` holds for a
    layer of ``model`` is valid for that layer (``check_temperature_value``:
    finite and > 0, KW's in ``[0, 1]``).

    The layers refuse an invalid temperature themselves when loading; this
    check runs before anything is copied and names the checkpoint too.

    Raises:
        InvalidTemperatureError: Names ``source``, the layer and the value.
    """
    state = model_state_of(state_dict)
    for name, module in unwrap_model(model).named_modules():
        check = getattr(module, 'check_temperature_value', None)
        if check is None or 'temperature' not in getattr(module, '_buffers', {}):
            continue
        value = state.get(f'{name}.temperature' if name else 'temperature')
        if not torch.is_tensor(value) or value.numel() != 1:
            continue  # absent (older checkpoint) or of another shape (fit check)
        try:
            check(value.item() if value.device.type != 'meta' else value)
        except (TypeError, ValueError) as err:
            raise InvalidTemperatureError(
                f'{source}: invalid attention temperature for layer {name or "(root)"} '
                f'({type(module).__name__}): {err}') from None


def nonfinite_counts(state_dict, keys=None) -> Dict[str, Tuple[int, int]]:
    """``{key: (NaN count, inf count)}`` of every floating-point (or complex)
    tensor of ``state_dict`` that holds NaN or inf, in its order; ``keys``
    restricts the check to those keys."""
    counts = {}
    for key, value in model_state_of(state_dict).items():
        if keys is not None and key not in keys:
            continue
        if not torch.is_tensor(value) or not (value.is_floating_point() or value.is_complex()):
            continue
        if value.numel() == 0 or bool(torch.isfinite(value).all()):
            continue
        nan = int(torch.isnan(value).sum())
        counts[key] = (nan, int(value.numel() - torch.isfinite(value).sum()) - nan)
    return counts


def check_finite_checkpoint(state_dict, source: str = 'checkpoint', keys=None) -> None:
    """Raise unless every floating-point tensor of ``state_dict`` (of ``keys``,
    if given) is finite.

    Raises:
        NonFiniteCheckpointError: (a ``ValueError``) One line with the number of
            NaN and inf values, the number of tensors holding them and the first
            few keys with their counts; ``counts`` holds them all.
    """
    counts = nonfinite_counts(state_dict, keys)
    if not counts:
        return
    state = model_state_of(state_dict)
    tensors = sum(1 for k, v in state.items() if torch.is_tensor(v) and (
        keys is None or k in keys))
    nan = sum(n for n, _ in counts.values())
    inf = sum(i for _, i in counts.values())
    listed = _first([f'{k} ({n + i})' for k, (n, i) in counts.items()])
    raise NonFiniteCheckpointError(
        f'{source} holds {nan + inf} non-finite value(s) ({nan} NaN, {inf} inf) in '
        f'{len(counts)} of {tensors} tensor(s): {listed}',
        {k: n + i for k, (n, i) in counts.items()})


def check_checkpoint_values(model: nn.Module, state_dict, source: str = 'checkpoint',
                            allow_nonfinite: bool = False) -> None:
    """The value checks of a checkpoint that fits ``model``: every attention
    temperature valid (:func:`check_checkpoint_temperatures`) and, unless
    ``allow_nonfinite``, no NaN/inf in what would be loaded into the model
    (:func:`check_finite_checkpoint`).

    Raises:
        InvalidTemperatureError, NonFiniteCheckpointError: Both are
            :class:`~mmdyn.utils.checkpoint_errors.InvalidCheckpointError`.
    """
    check_checkpoint_temperatures(model, state_dict, source)
    if not allow_nonfinite:
        check_finite_checkpoint(state_dict, source, keys=set(unwrap_model(model).state_dict()))


class CheckpointFitHook(_HookBase):
    """Refuse, inside an MMEngine ``Runner``, a checkpoint that does not fit the
    model or holds invalid values, before it is loaded (``after_load_checkpoint``
    runs before the weights are copied; MMEngine itself loads with
    ``strict=False``): no dict (a list, a bare tensor), missing / unexpected /
    reshaped keys (:func:`check_state_dict_fits`), an invalid attention
    temperature or NaN/inf values (:func:`check_checkpoint_values`).

    Args:
        allow_partial: Load a checkpoint that does not fit anyway, logging the
            same summary as a warning.
        source: Name of the checkpoint in the messages (default: the runner's
            ``load_from``).
        allow_nonfinite: Load NaN/inf values anyway, logging their summary as a
            warning (an invalid temperature is always refused).
    """

    priority = 'LOWEST'  # after hooks that rewrite the checkpoint (e.g. EMA)

    def __init__(self, allow_partial: bool = False, source: Optional[str] = None,
                 allow_nonfinite: bool = False):
        self.allow_partial = allow_partial
        self.source = source
        self.allow_nonfinite = allow_nonfinite

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        source = self.source or f'checkpoint {getattr(runner, "_load_from", None)}'
        if not isinstance(checkpoint, dict):
            # (MMEngine would add the hook's repr to a TypeError raised here.)
            raise InvalidCheckpointError(
                f'{source} holds {describe_object(checkpoint)}, not a checkpoint (expected '
                'a dict: an MMEngine checkpoint or a state dict)')
        try:
            check_state_dict_fits(runner.model, checkpoint, source=source)
        except CheckpointMismatchError as err:
            if not self.allow_partial:
                raise
            runner.logger.warning(f'{err}; loading what fits anyway (partial load allowed)')
        check_checkpoint_temperatures(runner.model, checkpoint, source)
        try:
            check_finite_checkpoint(checkpoint, source,
                                    keys=set(unwrap_model(runner.model).state_dict()))
        except NonFiniteCheckpointError as err:
            if not self.allow_nonfinite:
                raise
            runner.logger.warning(f'{err}; loading it anyway (non-finite values allowed)')


try:
    from mmengine.registry import HOOKS
    HOOKS.register_module(module=CheckpointFitHook, force=True)
except ImportError:  # pragma: no cover
    pass


install_safe_checkpoint_loading()
