"""Shared parts of the mmdyn classification datasets.

:func:`class_counts` gives the images per class of any mmpretrain dataset (the
mmdyn ones, CIFAR, ImageNet, MMEngine's dataset wrappers), for class-balanced
losses; :class:`ClassCountsMixin` gives the mmdyn datasets the same as a method.
"""
from typing import List, Optional

import numpy as np


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


class ClassCountsMixin:
    """Gives a dataset the method :meth:`class_counts`."""

    def class_counts(self) -> List[int]:
        """Images per class (one int per entry of ``metainfo['classes']``), see
        :func:`mmdyn.datasets.base.class_counts`."""
        return class_counts(self)
