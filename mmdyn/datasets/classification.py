"""MMPretrain wiring of the mmdyn classification datasets: importing this module
registers them.

======================  =====================================  ==============
name                    class                                  registry
======================  =====================================  ==============
``GTSRB``               :class:`mmdyn.datasets.gtsrb.GTSRB`    ``DATASETS``
``SVHN``                :class:`mmdyn.datasets.svhn.SVHN`      ``DATASETS``
``Imagenette``          :class:`~mmdyn.datasets.imagenette.Imagenette`  ``DATASETS``
``Imagewoof``           :class:`~mmdyn.datasets.imagenette.Imagewoof`   ``DATASETS``
``CropROI``             :class:`mmdyn.datasets.transforms.CropROI`      ``TRANSFORMS``
======================  =====================================  ==============

in ``mmpretrain.registry`` (the ``mmpretrain`` scope). ``mmdyn.models`` imports
this module, so ``custom_imports=dict(imports=['mmdyn.models'])`` in a config is
enough. :func:`class_counts` gives the images per class of any mmpretrain
dataset (CIFAR included), for class-balanced losses.
"""
from typing import List, Optional

import numpy as np
from mmpretrain.registry import DATASETS, TRANSFORMS

from .gtsrb import GTSRB, GTSRB_CLASSES
from .imagenette import (IMAGENETTE_CLASSES, IMAGENETTE_WNIDS, IMAGEWOOF_CLASSES,
                         IMAGEWOOF_WNIDS, Imagenette, Imagewoof)
from .svhn import SVHN, SVHN_CLASSES
from .transforms import CropROI

#: The dataset classes this module registers, by registry name.
DATASET_CLASSES = {'GTSRB': GTSRB, 'SVHN': SVHN, 'Imagenette': Imagenette,
                   'Imagewoof': Imagewoof}
#: The transforms this module registers, by registry name.
TRANSFORM_CLASSES = {'CropROI': CropROI}


def _register(registry, name: str, cls: type) -> None:
    existing = registry.module_dict.get(name)
    if existing is cls:
        return  # imported twice
    if existing is not None:
        raise KeyError(f'cannot register mmdyn {cls.__name__} as {name!r}: mmpretrain\'s '
                       f'{registry.name} registry already maps it to {existing!r}')
    registry.register_module(name=name, module=cls)


for _name, _cls in DATASET_CLASSES.items():
    _register(DATASETS, _name, _cls)
for _name, _cls in TRANSFORM_CLASSES.items():
    _register(TRANSFORMS, _name, _cls)


def _labels(dataset) -> np.ndarray:
    """Every sample's label, unwrapping MMEngine's dataset wrappers."""
    if hasattr(dataset, 'get_gt_labels'):
        return np.asarray(dataset.get_gt_labels()).reshape(-1)
    subsets = getattr(dataset, 'datasets', None)
    if isinstance(subsets, (list, tuple)):  # ConcatDataset
        parts = [_labels(d) for d in subsets]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)
    if hasattr(dataset, 'get_cat_ids'):  # e.g. ClassBalancedDataset
        return np.asarray([c for i in range(len(dataset)) for c in dataset.get_cat_ids(i)],
                          dtype=np.int64)
    times = getattr(dataset, 'times', None)
    if hasattr(dataset, 'dataset') and isinstance(times, int):  # RepeatDataset
        return np.tile(_labels(dataset.dataset), times)
    raise TypeError(f'cannot count the classes of {type(dataset).__name__}: it has neither '
                    'get_gt_labels() nor get_cat_ids() and is no known dataset wrapper')


def class_counts(dataset, num_classes: Optional[int] = None) -> List[int]:
    """The number of samples of each class in a classification dataset.

    Works for any mmpretrain dataset (``get_gt_labels()``, e.g. ``CIFAR10``,
    ``ImageNet``, the mmdyn datasets), for MMEngine's dataset wrappers
    (``ConcatDataset``, ``RepeatDataset``, ``ClassBalancedDataset``, counting
    the samples they yield) and for any dataset with ``get_cat_ids(idx)``.

    Args:
        dataset: The dataset.
        num_classes (int, optional): Length of the result. Default: None,
            which takes ``len(dataset.metainfo['classes'])``, or the largest
            label + 1 for a dataset without class names.

    Returns:
        list[int]: ``counts[c]`` = samples labelled ``c``, for
        ``c in range(num_classes)`` (zeros included).

    Raises:
        TypeError: The dataset gives no labels (see above).
        ValueError: ``num_classes`` is not an int >= 1, or is not given for an
            empty dataset without class names, or a label is outside
            ``0..num_classes-1``.
    """
    name = type(dataset).__name__
    if num_classes is not None and (not isinstance(num_classes, int)
                                    or isinstance(num_classes, bool) or num_classes < 1):
        raise ValueError(f'num_classes must be an int >= 1, got {num_classes!r}')
    labels = _labels(dataset).astype(np.int64)
    if num_classes is None:
        classes = (getattr(dataset, 'metainfo', None) or {}).get('classes')
        if classes is not None:
            num_classes = len(classes)
        elif labels.size:
            num_classes = int(labels.max()) + 1
        else:
            raise ValueError(f'{name} has no metainfo["classes"] and no samples; pass '
                             'num_classes')
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        raise ValueError(f'{name}: label {int(labels[bad][0])} outside 0..{num_classes - 1} '
                         f'({int(bad.sum())} such samples)')
    return [int(n) for n in np.bincount(labels, minlength=num_classes)]


__all__ = ['GTSRB', 'SVHN', 'Imagenette', 'Imagewoof', 'CropROI', 'class_counts',
           'DATASET_CLASSES', 'TRANSFORM_CLASSES', 'GTSRB_CLASSES', 'SVHN_CLASSES',
           'IMAGENETTE_CLASSES', 'IMAGENETTE_WNIDS', 'IMAGEWOOF_CLASSES', 'IMAGEWOOF_WNIDS']
