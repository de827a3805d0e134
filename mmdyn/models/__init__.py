"""OpenMMLab wiring of mmdyn: importing this module registers everything.

Configs use ``custom_imports = dict(imports=['mmdyn.models'],
allow_failed_imports=False)``. Importing registers the layers in MMEngine's
root ``MODELS`` registry (see :mod:`mmdyn.models.layers`) and installs the
safe checkpoint loader (:mod:`mmdyn.engine.checkpoint`).
"""
from mmdyn.engine import checkpoint as _checkpoint  # noqa: F401  (installs the loader)

from .layers import LAYER_NAMES, build_dyn_conv_layer
from . import backbones  # noqa: F401

__all__ = ['LAYER_NAMES', 'build_dyn_conv_layer']
