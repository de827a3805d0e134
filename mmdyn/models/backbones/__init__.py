"""Dynamic backbones: framework ResNet / MobileNetV2 with mmdyn layers injected.

Registered names: ``DynResNet`` and ``DynMobileNetV2`` in both
``mmdet.registry.MODELS`` and ``mmpretrain.registry.MODELS``, and
``DynResNetCIFAR`` in ``mmpretrain.registry.MODELS``; the dynamic mask
convolution ResNets of seeds/001, ``DMCResNet`` and ``DMCResNetCIFAR``, in
``mmpretrain.registry.MODELS``.
"""
from ._inject import (ALLOWED_CONVS, PRESETS, BeforeResidualSum, MobileNetV2DynMixin,
                      ResNetDynMixin, add_block_plugins, inflate_state_dict,
                      load_inflated_checkpoint, resolve_placement, strip_prefix)
from .dmc_resnet import DMCResNet, DMCResNetCIFAR, DMCResNetMixin
from .dyn_mobilenet_v2 import DynMobileNetV2Cls, DynMobileNetV2Det
from .dyn_resnet import DynResNetCIFAR, DynResNetCls, DynResNetDet

__all__ = [
    'ALLOWED_CONVS', 'PRESETS', 'ResNetDynMixin', 'MobileNetV2DynMixin', 'resolve_placement',
    'inflate_state_dict', 'load_inflated_checkpoint', 'strip_prefix', 'DynResNetDet',
    'DynResNetCls', 'DynResNetCIFAR', 'DynMobileNetV2Cls', 'DynMobileNetV2Det',
    'BeforeResidualSum', 'add_block_plugins', 'DMCResNet', 'DMCResNetCIFAR', 'DMCResNetMixin'
]
