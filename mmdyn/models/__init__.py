"""OpenMMLab wiring of mmdyn: importing this module registers everything.

Configs use ``custom_imports = dict(imports=['mmdyn.models'],
allow_failed_imports=False)``. Importing registers the layers in MMEngine's
root ``MODELS`` registry (see :mod:`mmdyn.models.layers`), the backbones, the
``MultiScaleFusionNeck``, the ``AdaptiveLoss``, the hooks and the datasets
(GTSRB, SVHN, Imagenette, Imagewoof) in the frameworks' registries, and installs
the safe checkpoint loader (:mod:`mmdyn.engine.checkpoint`).
"""
from mmdyn.engine import checkpoint as _checkpoint  # noqa: F401  (installs the loader)

from .layers import LAYER_NAMES, build_dyn_conv_layer
from . import backbones, heads, losses, necks  # noqa: F401
from mmdyn.datasets import classification as _datasets  # noqa: F401  (GTSRB, SVHN, ...)

__all__ = ['LAYER_NAMES', 'build_dyn_conv_layer']
