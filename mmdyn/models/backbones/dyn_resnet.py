"""Dynamic ResNets for MMDetection and MMPretrain (thin registry wiring).

Each class subclasses the framework's own ``ResNet`` and gets everything else
from :class:`~mmdyn.models.backbones._inject.ResNetDynMixin`: after the parent
builds the static network, the selected ``nn.Conv2d`` modules are replaced by
mmdyn dynamic layers (A2D2C/A2D2C+, Zhang et al., Pattern Recognition 2026;
ODConv, DynamicConv, CondConv, DCD; see ``docs/references.md``) of the same
geometry. Options: ``dyn_conv``, ``stage_with_dyn``,
``dyn_convs``, ``dyn_placement`` (see the mixin); all parent options
(``depth`` 18/34/50/101/152, ``out_indices``, ``frozen_stages``,
``norm_eval``, ``init_cfg``) behave as in the parent.

Example::

    import mmdyn.models  # registers
    from mmdet.registry import MODELS
    backbone = MODELS.build(dict(type='DynResNet', depth=50,
                                 dyn_conv=dict(type='A2D2CPlus', kernel_num=4),
                                 dyn_placement='all_block_convs'))
"""
from mmdet.models.backbones import ResNet as MMDetResNet
from mmdet.registry import MODELS as MMDET_MODELS
from mmpretrain.models.backbones import ResNet as MMPretrainResNet
from mmpretrain.models.backbones import ResNet_CIFAR as MMPretrainResNetCIFAR
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS

from ._inject import ResNetDynMixin


@MMDET_MODELS.register_module(name='DynResNet')
class DynResNetDet(ResNetDynMixin, MMDetResNet):
    """mmdet ``ResNet`` with dynamic convolutions (registered as
    ``DynResNet`` in ``mmdet.registry.MODELS``). Default ``out_indices``
    ``(0, 1, 2, 3)``, ``norm_eval=True`` as in mmdet."""


@MMPRETRAIN_MODELS.register_module(name='DynResNet')
class DynResNetCls(ResNetDynMixin, MMPretrainResNet):
    """mmpretrain ``ResNet`` with dynamic convolutions (registered as
    ``DynResNet`` in ``mmpretrain.registry.MODELS``). Default
    ``out_indices=(3,)``."""


@MMPRETRAIN_MODELS.register_module(name='DynResNetCIFAR')
class DynResNetCIFAR(ResNetDynMixin, MMPretrainResNetCIFAR):
    """mmpretrain ``ResNet_CIFAR`` (3x3 stem, no max-pool) with dynamic
    convolutions (registered as ``DynResNetCIFAR``). The ``'initial'`` preset
    makes its 3x3 stem conv dynamic."""
