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
enough. It also re-exports :func:`~mmdyn.datasets.base.class_counts` (the images
per class of any mmpretrain dataset, CIFAR included, for class-balanced losses).
"""
from mmpretrain.registry import DATASETS, TRANSFORMS

from .base import class_counts
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


__all__ = ['GTSRB', 'SVHN', 'Imagenette', 'Imagewoof', 'CropROI', 'class_counts',
           'DATASET_CLASSES', 'TRANSFORM_CLASSES', 'GTSRB_CLASSES', 'SVHN_CLASSES',
           'IMAGENETTE_CLASSES', 'IMAGENETTE_WNIDS', 'IMAGEWOOF_CLASSES', 'IMAGEWOOF_WNIDS']
