"""Classification heads of mmdyn (mmpretrain registry).

:class:`KWLinearClsHead` is mmpretrain's ``LinearClsHead`` whose classifier is
a KernelWarehouse linear layer (Li, Yao, "KernelWarehouse: Rethinking the
Design of Dynamic Convolution", ICML 2024): the official MobileNetV2 KW 1/2x
makes its classifier a ``KWLinear`` with its own warehouse (cells of 1/40 of
the input features, half as many cells as partitions) behind a dropout.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
from mmpretrain.models.heads import LinearClsHead
from mmpretrain.registry import MODELS

from mmdyn.ops import KWLinear
from mmdyn.utils.validation import check_number

#: The classifier of the official MobileNetV2 KW 1/2x.
OFFICIAL_KW_CLASSIFIER = dict(cell_num_ratio=0.5, cell_inplane_ratio=0.025,
                              cell_outplane_ratio=1.0, reduction=0.03125)


@MODELS.register_module()
class KWLinearClsHead(LinearClsHead):
    """``LinearClsHead`` with a :class:`~mmdyn.ops.KWLinear` classifier.

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Input features.
        kw_cfg (dict | None): ``KWLinear`` options (warehouse ratios,
            ``reduction``, ``temperature``). Default: the official MobileNetV2
            KW 1/2x classifier (:data:`OFFICIAL_KW_CLASSIFIER`).
        dropout (float): Dropout before the classifier, in ``[0, 1)``.
            Default: 0.
        **kwargs: ``LinearClsHead``'s arguments (``loss``, ``topk``,
            ``init_cfg``...). Its ``init_cfg`` (normal init of ``Linear``
            layers) is not applied to the KW layer, which keeps the official
            initialisation of its attention and cells.
    """

    def __init__(self, num_classes: int, in_channels: int, kw_cfg: Optional[dict] = None,
                 dropout: float = 0.0, **kwargs):
        super().__init__(num_classes, in_channels, **kwargs)
        self.dropout = nn.Dropout(check_number('dropout', dropout, 0.0, 1.0,
                                               owner='KWLinearClsHead'))
        options = dict(OFFICIAL_KW_CLASSIFIER if kw_cfg is None else kw_cfg)
        self.fc = KWLinear(in_channels, num_classes, **options)

    def init_weights(self) -> None:
        super().init_weights()
        self.fc.reset_parameters()

    def forward(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        return self.fc(self.dropout(self.pre_logits(feats)))
