"""The one way mmdyn reads a config (tools, inference, analysis, export)."""
import copy
import os
import os.path as osp
from typing import Optional, Union

__all__ = ['load_config', 'propagate_data_root']

DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
EVALUATORS = ('val_evaluator', 'test_evaluator')


def load_config(config: Union[str, os.PathLike, 'object'], cfg_options: Optional[dict] = None,
                *, require_model: bool = False, init_scope: bool = False,
                data_root: bool = True):
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

    Returns:
        The ``mmengine.config.Config``.

    Raises:
        FileNotFoundError: The config file does not exist.
        TypeError: ``config`` is neither a path nor a ``Config``.
        ValueError: ``require_model`` and the config has no ``model``.
    """
    from mmengine.config import Config

    import mmdyn.models  # noqa: F401  (registrations, safe checkpoint loading)
    if isinstance(config, Config):
        cfg = copy.deepcopy(config)
    elif isinstance(config, (str, os.PathLike)):
        path = os.fspath(config)
        if not osp.isfile(path):
            raise FileNotFoundError(f'config file not found: {path}')
        cfg = Config.fromfile(path)
    else:
        raise TypeError(f'config must be a file path or an mmengine Config, got '
                        f'{type(config).__name__}')
    options = dict(cfg_options or {})
    if data_root:
        propagate_data_root(cfg)  # the file's own top-level data_root (a derived config)
        if 'data_root' in options:
            cfg.merge_from_dict({'data_root': options.pop('data_root')})
            propagate_data_root(cfg)
    # Merged last: an explicit ``train_dataloader.dataset.data_root=...`` (say) wins.
    if options:
        cfg.merge_from_dict(options)
    if require_model and 'model' not in cfg:
        raise ValueError(f'config {cfg.filename or "<Config>"} has no `model` field')
    if init_scope:
        from mmengine.registry import init_default_scope
        init_default_scope(cfg.get('default_scope', 'mmdet'))
    return cfg


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
