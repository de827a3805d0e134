"""Datasets of mmdyn.

* Classification datasets read from their official on-disk formats (never
  downloaded): :class:`GTSRB`, :class:`SVHN`, :class:`Imagenette`,
  :class:`Imagewoof`, and the :class:`CropROI` transform; importing this package
  registers them in mmpretrain's ``DATASETS`` / ``TRANSFORMS``
  (:mod:`mmdyn.datasets.classification`). See ``docs/datasets.md``.
* :func:`class_counts`: images per class of any mmpretrain dataset or MMEngine
  dataset wrapper, for class-balanced losses.
* :func:`check_dataset_paths`: names a missing dataset path and its expected
  layout before a tool builds anything.
* :func:`make_shapes_coco`: the small synthetic COCO-format shapes set of the
  demo and the end-to-end tests.
"""
from .base import ClassCountsMixin, class_counts
from .checks import LAYOUTS, check_dataset_paths, expected_layout
from .classification import (DATASET_CLASSES, GTSRB, GTSRB_CLASSES, IMAGENETTE_CLASSES,
                             IMAGENETTE_WNIDS, IMAGEWOOF_CLASSES, IMAGEWOOF_WNIDS, SVHN,
                             SVHN_CLASSES, TRANSFORM_CLASSES, CropROI, Imagenette, Imagewoof)
from .gtsrb import read_gt_csv, split_tracks
from .svhn import load_svhn_mat
from .synthetic_coco import CLASSES as SHAPE_CLASSES
from .synthetic_coco import make_shapes_coco

__all__ = [
    'GTSRB', 'SVHN', 'Imagenette', 'Imagewoof', 'CropROI', 'DATASET_CLASSES',
    'TRANSFORM_CLASSES', 'GTSRB_CLASSES', 'SVHN_CLASSES', 'IMAGENETTE_CLASSES',
    'IMAGENETTE_WNIDS', 'IMAGEWOOF_CLASSES', 'IMAGEWOOF_WNIDS', 'class_counts',
    'ClassCountsMixin', 'read_gt_csv', 'split_tracks', 'load_svhn_mat', 'check_dataset_paths',
    'expected_layout', 'LAYOUTS', 'SHAPE_CLASSES', 'make_shapes_coco'
]
