"""Classification losses of mmdyn, registered in ``mmpretrain.registry.MODELS``.

``AdaptiveLoss`` (alias ``ClassBalancedFocalLoss``): the class-balanced focal
loss that the multi-scale dynamic convolution blog calls its adaptive loss
(``docs/references.md``, MSFF).
"""
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS

from .adaptive_loss import AdaptiveLoss, class_balanced_focal_loss, class_balanced_weights

for _name in ('AdaptiveLoss', 'ClassBalancedFocalLoss'):
    if MMPRETRAIN_MODELS.module_dict.get(_name) is not AdaptiveLoss:
        MMPRETRAIN_MODELS.register_module(name=_name, module=AdaptiveLoss)

__all__ = ['AdaptiveLoss', 'class_balanced_focal_loss', 'class_balanced_weights']
