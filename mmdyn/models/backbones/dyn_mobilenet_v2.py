"""Dynamic MobileNetV2 for MMPretrain and MMDetection (thin registry wiring).

Replaces what official ODConv replaces (Li, Zhou, Yao, "Omni-Dimensional
Dynamic Convolution", ICLR 2022, and its code OSVAI/ODConv):
the stem ``conv1`` and the classifier stay static; every pw/dw convolution of
the inverted residual blocks and the last 1x1 convolution (``conv2``) become
the mmdyn layer given by ``dyn_conv`` (default
``dict(type='A2D2CPlus', kernel_num=4)``). ``widen_factor`` (0.5/0.75/1.0...),
``out_indices``, ``frozen_stages``, ``norm_eval`` and ``init_cfg`` behave as in
the parent. Logic: :class:`~mmdyn.models.backbones._inject.MobileNetV2DynMixin`.
"""
from mmdet.models.backbones import MobileNetV2 as MMDetMobileNetV2
from mmdet.registry import MODELS as MMDET_MODELS
from mmpretrain.models.backbones import MobileNetV2 as MMPretrainMobileNetV2
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS

from ._inject import MobileNetV2DynMixin


@MMPRETRAIN_MODELS.register_module(name='DynMobileNetV2')
class DynMobileNetV2Cls(MobileNetV2DynMixin, MMPretrainMobileNetV2):
    """mmpretrain ``MobileNetV2`` with dynamic convolutions (registered as
    ``DynMobileNetV2`` in ``mmpretrain.registry.MODELS``)."""


@MMDET_MODELS.register_module(name='DynMobileNetV2')
class DynMobileNetV2Det(MobileNetV2DynMixin, MMDetMobileNetV2):
    """mmdet ``MobileNetV2`` with dynamic convolutions (registered as
    ``DynMobileNetV2`` in ``mmdet.registry.MODELS``)."""
