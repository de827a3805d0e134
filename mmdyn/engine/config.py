"""The one way mmdyn reads a config (tools, inference, analysis, export)."""
import ast
import copy
import difflib
import numbers
import os
import os.path as osp
from typing import Iterator, List, Optional, Tuple, Union

__all__ = ['load_config', 'propagate_data_root', 'read_config_file', 'check_cfg_options']

DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
EVALUATORS = ('val_evaluator', 'test_evaluator')


def load_config(config: Union[str, os.PathLike, 'object'], cfg_options: Optional[dict] = None,
                *, require_model: bool = False, init_scope: bool = False,
                data_root: bool = True, check_options: bool = True):
    """Load an MMDetection / MMPretrain config with mmdyn's registrations in place.

    Imports :mod:`mmdyn.models` first (layer, backbone and hook registrations,
    safe checkpoint loading), so every ``dyn_conv=dict(type=...)`` and
    ``custom_hooks`` entry of an mmdyn config resolves.

    Args:
        config: Config file path, or an ``mmengine.Config`` (deep-copied, never
            modified).
        cfg_options: Overrides merged into the config (``--cfg-options``).
        require_model: Raise unless the config has a ``model`` field.
        init_scope: Also make ``cfg.default_scope`` (``'mmdet'`` when absent)
            the current default registry scope.
        data_root: Make the top-level ``data_root`` (of the file, then of
            ``cfg_options``) reach every dataloader and evaluator
            (:func:`propagate_data_root`); the other ``cfg_options`` are merged
            after that, so an option that sets one dataset's ``data_root`` or one
            evaluator's ``ann_file`` is kept as given.
        check_options: Refuse ``cfg_options`` that would change nothing or
            put a string where the config holds a number
            (:func:`check_cfg_options`).

    Returns:
        The ``mmengine.config.Config``.

    Raises:
        FileNotFoundError: The config file does not exist.
        TypeError: ``config`` is neither a path nor a ``Config``.
        ValueError: The file is not a config MMEngine can read (not Python,
            a syntax error, an error while it runs: one line naming the file
            and the line, :func:`read_config_file`); an option of
            ``cfg_options`` is refused or cannot be merged (the message names
            it); ``require_model`` and the config has no ``model``.
    """
    from mmengine.config import Config

    import mmdyn.models  # noqa: F401  (registrations, safe checkpoint loading)
    if isinstance(config, Config):
        cfg = copy.deepcopy(config)
    elif isinstance(config, (str, os.PathLike)):
        cfg = read_config_file(os.fspath(config))
    else:
        raise TypeError(f'config must be a file path or an mmengine Config, got '
                        f'{type(config).__name__}')
    options = dict(cfg_options or {})
    if check_options:
        check_cfg_options(cfg, options)
    if data_root:
        propagate_data_root(cfg)  # the file's own top-level data_root (a derived config)
        if 'data_root' in options:
            _merge(cfg, {'data_root': options.pop('data_root')})
            propagate_data_root(cfg)
    # Merged last: an explicit ``train_dataloader.dataset.data_root=...`` (say) wins.
    if options:
        _merge(cfg, options)
    if require_model and 'model' not in cfg:
        raise ValueError(f'config {cfg.filename or "<Config>"} has no `model` field')
    if init_scope:
        from mmengine.registry import init_default_scope
        init_default_scope(cfg.get('default_scope', 'mmdet'))
    return cfg


def read_config_file(path: str):
    """``mmengine.Config.fromfile(path)`` with every failure as one line that
    names the file.

    A ``.py`` config is checked before MMEngine runs it: a binary file, text
    that is not UTF-8 and a syntax error (a YAML text named ``.py``, say) are
    refused naming the line. An error while the file (or one of its bases)
    runs names the line of the config where it happened.

    Args:
        path: The config file.

    Returns:
        The ``mmengine.config.Config``.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ValueError: The file cannot be read as a config (one line naming it).
    """
    from mmengine.config import Config
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file not found: {path}')
    ext = osp.splitext(path)[1]
    if ext not in ('.py', '.json', '.yaml', '.yml'):
        raise ValueError(f'config {path} must be a .py (or .json/.yaml/.yml) file, '
                         f'not {ext or "a file without extension"}')
    if ext == '.py':
        _check_python_text(path)
    try:
        return Config.fromfile(path)
    except Exception as err:  # anything that went wrong while reading or running the file
        where = _config_line(err)
        text = str(err).strip().splitlines()[0] if str(err).strip() else ''
        raise ValueError(f'config {path} could not be read{where}: {type(err).__name__}'
                         f'{": " + text if text else ""}') from err


def _check_python_text(path: str) -> None:
    """Raise ``ValueError`` naming ``path`` unless it is UTF-8 Python text
    that parses (the line of a syntax error)."""
    with open(path, 'rb') as f:
        data = f.read()
    if b'\0' in data:
        raise ValueError(f'config {path} is a binary file, not a Python config')
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b'\n') + 1
        raise ValueError(f'config {path} is not a Python config: line {line} is not UTF-8 '
                         f'text') from None
    try:
        ast.parse(text, filename=path)
    except SyntaxError as err:
        raise ValueError(f'config {path} is not valid Python: line {err.lineno}: {err.msg} '
                         f'(a config is a Python file of assignments such as '
                         f'model = dict(...))') from None


def _config_line(err: BaseException) -> str:
    """``' (line N)'`` of the config code where ``err`` was raised (the last
    module-level frame of its traceback: MMEngine runs a config as a module),
    ``''`` when there is none."""
    tb, line = err.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code.co_name == '<module>':
            line = tb.tb_lineno
        tb = tb.tb_next
    if isinstance(err, SyntaxError) and err.lineno:
        line = err.lineno
    return f' (line {line})' if line else ''


#: Top-level keys that MMEngine's ``Runner`` (or mmdyn) reads, so that an option
#: may add them to a config that does not set them.
RUNNER_KEYS = frozenset((
    'model', 'work_dir', 'train_dataloader', 'val_dataloader', 'test_dataloader', 'train_cfg',
    'val_cfg', 'test_cfg', 'auto_scale_lr', 'optim_wrapper', 'param_scheduler',
    'val_evaluator', 'test_evaluator', 'default_hooks', 'custom_hooks', 'data_preprocessor',
    'load_from', 'resume', 'launcher', 'env_cfg', 'log_processor', 'log_level', 'visualizer',
    'default_scope', 'randomness', 'experiment_name', 'runner_type', 'model_wrapper_cfg',
    'compile', 'find_unused_parameters', 'custom_imports', 'strategy', 'data_root',
    'pretrained'))


def _runner_keys() -> frozenset:
    """:data:`RUNNER_KEYS` and the arguments of the installed MMEngine's runners."""
    import inspect
    keys = set(RUNNER_KEYS)
    try:
        from mmengine.runner import Runner
        keys.update(inspect.signature(Runner.__init__).parameters)
        from mmengine.runner import FlexibleRunner
        keys.update(inspect.signature(FlexibleRunner.__init__).parameters)
    except (ImportError, TypeError, ValueError):
        pass
    keys.discard('self')
    return frozenset(keys)


def _key_paths(node, prefix: str = '', depth: int = 0) -> Iterator[str]:
    """Every dotted key path of ``node`` (dicts; lists by index), depth first."""
    if depth > 12:
        return
    if isinstance(node, dict):
        items = ((str(k), v) for k, v in node.items())
    elif isinstance(node, (list, tuple)):
        items = ((str(i), v) for i, v in enumerate(node))
    else:
        return
    for key, value in items:
        path = f'{prefix}{key}'
        yield path
        yield from _key_paths(value, path + '.', depth + 1)


def _lookup(cfg, key: str) -> Tuple[bool, object]:
    """``(True, value)`` of the dotted ``key`` in ``cfg`` (list indices
    allowed), ``(False, None)`` if some part of it is missing."""
    node = getattr(cfg, '_cfg_dict', cfg)
    for part in key.split('.'):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node


def _nearest_paths(cfg, key: str, limit: int = 3) -> List[str]:
    """The key paths of ``cfg`` that end with ``key`` (shortest first), else
    those that end with a name close to it: first the names that start with
    the same word (``max_epochs`` -> ``max_iters``), then by similarity."""
    paths = [p for p in _key_paths(getattr(cfg, '_cfg_dict', cfg))
             if not p.split('.')[-1].isdigit()]
    by_leaf = {}
    for path in paths:
        by_leaf.setdefault(path.split('.')[-1], []).append(path)
    if key in by_leaf:
        names = [key]
    else:
        first = key.split('_')[0]
        close = set(difflib.get_close_matches(key, list(by_leaf), n=10, cutoff=0.5))
        close.update(n for n in by_leaf if '_' in key and n.split('_')[0] == first)
        names = sorted(close, key=lambda n: (n.split('_')[0] != first,
                                             -difflib.SequenceMatcher(None, key, n).ratio(), n))
    found = []
    for name in names:
        found.extend(sorted(by_leaf[name], key=lambda p: (p.count('.'), p)))
    return found[:limit]


def check_cfg_options(cfg, options: dict, name: str = '--cfg-options') -> None:
    """Refuse overrides that would silently change nothing or break the run.

    * A top-level key that the config does not have and that MMEngine's
      ``Runner`` does not read (``max_epochs=12`` where the config has
      ``train_cfg.max_epochs``) would be ignored: refused, naming the nearest
      existing key paths. Nested keys may be added (``default_hooks.checkpoint.
      max_keep_ckpts=3``).
    * A string where the config holds a number or a bool (``train_cfg.
      max_epochs=abc``; MMEngine's parser makes numbers of what looks like
      one): refused, naming the key, the value and the expected type.

    Args:
        cfg: The ``mmengine.Config`` the options are for (not changed).
        options: The parsed ``--cfg-options`` (``{dotted key: value}``).
        name: The option named in the messages.

    Raises:
        ValueError: One line naming the first refused option.
    """
    runner_keys = None
    for key, value in options.items():
        found, old = _lookup(cfg, key)
        if not found:
            if '.' in key:
                continue
            runner_keys = runner_keys if runner_keys is not None else _runner_keys()
            if key in runner_keys:
                continue
            near = _nearest_paths(cfg, key)
            hint = (f'; did you mean {" or ".join(near)}?' if near else
                    '; set a key of the config (KEY.SUBKEY=VALUE)')
            raise ValueError(f'{name} {key}={value}: the config has no top-level key {key!r} '
                             f'and nothing reads it, so it would change nothing{hint}')
        if not isinstance(value, str):
            continue
        if isinstance(old, bool):
            expected = 'true or false'
        elif isinstance(old, numbers.Number):
            expected = 'a number'
        else:
            continue
        raise ValueError(f'{name} {key}={value}: {key} is {old!r} in the config, expected '
                         f'{expected}, got the string {value!r}')


def _merge(cfg, options: dict) -> None:
    """``cfg.merge_from_dict(options)``; a failure names the options."""
    try:
        cfg.merge_from_dict(options)
    except (TypeError, KeyError, ValueError, AttributeError) as err:
        text = str(err).strip().strip('\'"').splitlines()[0] if str(err).strip() else ''
        shown = ' '.join(f'{k}={v}' for k, v in options.items())
        raise ValueError(f'--cfg-options {shown} cannot be merged into the config: '
                         f'{text or type(err).__name__}') from err


def _root(path: str) -> str:
    """``path`` without trailing slashes: ``'data/coco/'`` and ``'data/coco'`` are
    one root."""
    return path.rstrip('/') or path


def _reroot(path: str, old: str, new: str) -> Optional[str]:
    """``path`` moved from under the root ``old`` to under ``new`` (``None`` if it
    is not under ``old``). Joins with one ``/`` whatever the trailing slashes."""
    if _root(path) == old:
        return new
    if path.startswith(old + '/'):
        return osp.join(new, path[len(old):].lstrip('/'))
    return None


def _dataset_roots(node, found: list) -> None:
    """Append every ``data_root`` value under ``node`` (a dataloader's dataset,
    wrappers and ``ConcatDataset`` lists included), trailing slashes removed."""
    if isinstance(node, dict):
        if isinstance(node.get('data_root'), str):
            found.append(_root(node['data_root']))
        for value in node.values():
            _dataset_roots(value, found)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _dataset_roots(value, found)


def _replace_roots(node, old: str, new: str, path_keys=()):
    """Return ``node`` with every ``data_root`` equal to the root ``old`` set to
    ``new`` and the paths under ``old`` of ``path_keys`` keys re-rooted (dicts are
    changed in place, lists and tuples rebuilt)."""
    if isinstance(node, dict):
        for key, value in list(node.items()):
            if key == 'data_root' and isinstance(value, str) and _root(value) == old:
                node[key] = new
            elif key in path_keys and isinstance(value, str):
                moved = _reroot(value, old, new)
                if moved is not None:
                    node[key] = moved
            else:
                node[key] = _replace_roots(value, old, new, path_keys)
        return node
    if isinstance(node, list):
        return [_replace_roots(v, old, new, path_keys) for v in node]
    if isinstance(node, tuple):
        return tuple(_replace_roots(v, old, new, path_keys) for v in node)
    return node


def propagate_data_root(cfg) -> bool:
    """Make ``cfg.data_root`` the root of every dataloader and evaluator.

    MMEngine evaluates ``data_root = ...`` of a ``_base_`` file where the base is
    read, so a derived config (or ``--cfg-options data_root=...``) that sets a
    new top-level ``data_root`` would change nothing else. When every dataset of
    the train/val/test dataloaders has one and the same ``data_root`` and it
    differs from ``cfg.data_root``, this sets the datasets' ``data_root`` to the
    new value and re-roots the evaluators' paths (``ann_file``,
    ``outfile_prefix``) that started with the old one (COCO's
    ``data_root + 'annotations/instances_val2017.json'``).

    Args:
        cfg: An ``mmengine.Config`` (changed in place).

    Returns:
        ``True`` if something was re-rooted.

    Raises:
        ValueError: The dataloaders use several different roots and none is
            ``cfg.data_root`` (set each dataset's ``data_root`` explicitly).
    """
    new = cfg.get('data_root')
    if not isinstance(new, str):
        return False
    roots: list = []
    for key in DATALOADERS:
        _dataset_roots(cfg.get(key) or {}, roots)
    distinct = sorted(set(roots))
    if not distinct or distinct == [_root(new)]:
        return False
    if len(distinct) > 1:
        if _root(new) in distinct:
            return False  # the datasets were set one by one on purpose
        raise ValueError(f'data_root={new!r} cannot be applied: the dataloaders use several '
                         f'roots {distinct}; set each dataset\'s data_root instead')
    old = distinct[0]
    for key in DATALOADERS:
        if cfg.get(key):
            cfg[key] = _replace_roots(cfg[key], old, new)
    for key in EVALUATORS:
        if cfg.get(key):
            cfg[key] = _replace_roots(cfg[key], old, new, ('ann_file', 'outfile_prefix'))
    return True
