"""Dynamic backbones: framework ResNet / MobileNetV2 with mmdyn layers injected.

Modules: :mod:`._inject` (placement options and conv swapping, the mixins),
:mod:`.block_plugins` (modules before the residual sum), :mod:`.inflation`
(static checkpoint -> kernel banks), and the registered classes in
:mod:`.dyn_resnet`, :mod:`.dyn_mobilenet_v2`, :mod:`.dmc_resnet`.

Registered names: ``DynResNet`` and ``DynMobileNetV2`` in both
``mmdet.registry.MODELS`` and ``mmpretrain.registry.MODELS``, and
``DynResNetCIFAR`` in ``mmpretrain.registry.MODELS``; the dynamic mask
convolution ResNets (Jiang, You, Zhang, CAAI Trans. Intell. Syst. 2026, see
``docs/dmc_design.md``), ``DMCResNet`` and ``DMCResNetCIFAR``, in
``mmpretrain.registry.MODELS``.
"""
from ._inject import (ALLOWED_CONVS, PRESETS, MobileNetV2DynMixin, ResNetDynMixin,
                      resolve_placement)
from .block_plugins import (ResidualPlugins, add_block_plugins, attach_residual_plugins,
                            rename_legacy_plugin_keys)
from .dmc_resnet import DMCResNet, DMCResNetCIFAR, DMCResNetMixin
from .dyn_mobilenet_v2 import DynMobileNetV2Cls, DynMobileNetV2Det
from .dyn_resnet import DynResNetCIFAR, DynResNetCls, DynResNetDet
from .inflation import (count_inflated_convs, inflate_state_dict, load_inflated_checkpoint,
                        read_state_dict, remap_torchvision_mobilenet_v2, select_backbone_state)

__all__ = [
    'ALLOWED_CONVS', 'PRESETS', 'ResNetDynMixin', 'MobileNetV2DynMixin', 'resolve_placement',
    'inflate_state_dict', 'load_inflated_checkpoint', 'select_backbone_state', 'read_state_dict',
    'count_inflated_convs', 'remap_torchvision_mobilenet_v2', 'DynResNetDet', 'DynResNetCls',
    'DynResNetCIFAR', 'DynMobileNetV2Cls', 'DynMobileNetV2Det', 'ResidualPlugins',
    'add_block_plugins', 'attach_residual_plugins', 'rename_legacy_plugin_keys', 'DMCResNet',
    'DMCResNetCIFAR', 'DMCResNetMixin'
]
