"""Class names of a model, from its checkpoint or its config.

Sources in priority order: the checkpoint's ``meta.dataset_meta`` (MMEngine's
Runner stores the training set's ``metainfo`` there) and the old
``meta.CLASSES``, the config's test dataset ``metainfo``/``classes``, a
top-level ``metainfo``/``classes``, the dataset type's ``METAINFO``, else
``"class i"``. A source whose length differs from the model's number of
classes is skipped with a warning (mmdet's ``init_detector`` would otherwise
fall back to the 80 COCO names).
"""
import copy
import os.path as osp
import warnings
from typing import List, Optional, Tuple

import torch

from .tasks import predictor_class

__all__ = ['config_class_names', 'model_num_classes', 'resolve_class_names',
           'test_dataset_cfg']

Names = Tuple[str, ...]


def test_dataset_cfg(cfg) -> Optional[dict]:
    """The (unwrapped) ``test_dataloader.dataset`` of ``cfg``, if any."""
    loader = cfg.get('test_dataloader') or {}
    dataset = loader.get('dataset')
    while isinstance(dataset, dict) and 'pipeline' not in dataset:
        if 'dataset' in dataset:
            dataset = dataset['dataset']
        elif dataset.get('datasets'):
            dataset = dataset['datasets'][0]
        else:
            break
    return dataset


def _names(value) -> Optional[Names]:
    """A class-name sequence from a config/meta value (a file of names allowed)."""
    if isinstance(value, str):
        if osp.isfile(value):
            with open(value) as f:
                return tuple(line.strip() for line in f if line.strip())
        return None
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def _class_candidates(meta: dict, cfg, registry) -> List[Tuple[str, Optional[Names]]]:
    """Possible class-name sources, in priority order."""
    out = []
    dataset_meta = {str(k).lower(): v for k, v in (meta.get('dataset_meta') or {}).items()}
    out.append(('checkpoint meta.dataset_meta', _names(dataset_meta.get('classes'))))
    out.append(('checkpoint meta.CLASSES', _names(meta.get('CLASSES'))))
    dataset = test_dataset_cfg(cfg) or {}
    out.append(('config test dataset metainfo',
                _names((dataset.get('metainfo') or {}).get('classes'))))
    out.append(('config test dataset classes', _names(dataset.get('classes'))))
    out.append(('config metainfo', _names((cfg.get('metainfo') or {}).get('classes'))))
    out.append(('config classes', _names(cfg.get('classes'))))
    kind = dataset.get('type')
    if isinstance(kind, str):
        try:
            cls = registry.get(kind)
        except Exception:  # noqa: BLE001 - unknown type: no names from it
            cls = None
        out.append((f'{kind}.METAINFO',
                    _names((getattr(cls, 'METAINFO', None) or {}).get('classes'))))
    return out


def model_num_classes(model) -> Optional[int]:
    """Number of classes of a classifier head or a detector's (RoI) bbox head."""
    for path in ('head', 'roi_head.bbox_head', 'bbox_head'):
        obj = model
        for part in path.split('.'):
            obj = getattr(obj, part, None)
        if isinstance(obj, torch.nn.ModuleList) and len(obj):
            obj = obj[-1]
        num = getattr(obj, 'num_classes', None)
        if isinstance(num, int) and num > 0:
            return num
    return None


def resolve_class_names(cfg, num_classes: Optional[int] = None,
                        checkpoint_meta: Optional[dict] = None) -> Tuple[Names, str]:
    """Class names for a model of ``cfg`` without building it (sources: see the
    module docstring).

    Args:
        cfg: An ``mmengine.Config`` (its ``default_scope`` picks the registry).
        num_classes: The model's number of classes, if known.
        checkpoint_meta: The ``meta`` dict of a checkpoint, if any.

    Returns:
        ``(names, source)``, ``source`` describing where they came from
        (``'generated'`` for ``"class i"``).

    Raises:
        ValueError: No names found and ``num_classes`` is ``None``.
    """
    registry = predictor_class(cfg).dataset_registry()
    for source, names in _class_candidates(checkpoint_meta or {}, cfg, registry):
        if names is None:
            continue
        if num_classes is not None and len(names) != num_classes:
            warnings.warn(f'ignoring the {len(names)} class names of the {source}: the model '
                          f'has {num_classes} classes')
            continue
        return names, source
    if num_classes is None:
        raise ValueError(f'cannot tell the classes of the model of {cfg.filename}: no class '
                         f'names found and the head has no num_classes')
    return tuple(f'class {i}' for i in range(num_classes)), 'generated'


def config_class_names(cfg, num_classes: Optional[int] = None) -> Names:
    """Class names without a model or checkpoint: :func:`resolve_class_names`,
    and when that only generates ``"class i"``, the names of the test dataset
    built from ``cfg`` (e.g. a ``CustomDataset``'s folder names, when the data
    is on disk).

    Args:
        cfg: An ``mmengine.Config``.
        num_classes: The number of classes; ``None``: the config's
            ``model.head.num_classes`` (a classifier head).
    """
    from mmengine.registry import DefaultScope
    if num_classes is None:
        num_classes = ((cfg.get('model') or {}).get('head') or {}).get('num_classes')
    names, source = resolve_class_names(cfg, num_classes)
    if source == 'generated' and cfg.get('test_dataloader'):
        cls = predictor_class(cfg)
        try:
            with DefaultScope.overwrite_default_scope(cls.scope):
                dataset = cls.dataset_registry().build(
                    copy.deepcopy(cfg.test_dataloader.dataset))
            found = tuple(dataset.metainfo.get('classes') or ())
            if len(found) == len(names):
                names = found
        except Exception:  # noqa: BLE001 - data not on disk: keep "class i"
            pass
    return tuple(names)
