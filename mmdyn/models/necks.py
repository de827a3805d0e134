"""Multi-scale feature fusion as a neck, for mmpretrain and mmdet.

The multi-scale dynamic convolution blog (Srlua, "image classification with
multi-scale dynamic convolution"; ``docs/references.md``, MSFF, and its reading
in ``docs/dmc_design.md``) fuses parallel 1/3/5/7 convolutions of a feature map
(:class:`~mmdyn.ops.MultiScaleFeatureFusion`). As a neck it runs on the
backbone's output feature maps: one fusion module per input level; for a
classifier it then pools globally (replacing ``GlobalAveragePooling``), for a
detector it keeps the maps.

Registered as ``MultiScaleFusionNeck`` in ``mmpretrain.registry.MODELS`` and
``mmdet.registry.MODELS``.
"""
from typing import Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmdet.registry import MODELS as MMDET_MODELS
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS

from mmdyn.ops import MultiScaleFeatureFusion


class MultiScaleFusionNeck(BaseModule):
    """One :class:`~mmdyn.ops.MultiScaleFeatureFusion` per backbone level.

    Shapes: a tensor ``(B, C_i, H, W)`` or a tuple of them -> a tuple of
    ``(B, C_out_i)`` (``pool=True``) or ``(B, C_out_i, H', W')`` maps.

    Args:
        in_channels (int | Sequence[int]): Channels of each input level.
        out_channels (int | Sequence[int] | None): Output channels per level;
            None keeps ``in_channels``. Default: None.
        kernel_sizes (Sequence[int]): Branch kernels. Default: ``(1, 3, 5, 7)``.
        fusion (str): ``'sum'`` (the blog), ``'concat'`` or ``'weighted'``.
            Default: ``'sum'``.
        act (bool): ReLU after each fusion. Default: True.
        pool (bool): Global average pooling after the fusion (classifier
            necks). Default: True.
        init_cfg (dict | list | None): MMEngine init config. Default: None
            (the fusion modules' own ``nn.Conv2d`` init).
    """

    def __init__(self, in_channels: Union[int, Sequence[int]],
                 out_channels: Union[int, Sequence[int], None] = None,
                 kernel_sizes: Sequence[int] = (1, 3, 5, 7), fusion: str = 'sum',
                 act: bool = True, pool: bool = True, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        ins = [in_channels] if isinstance(in_channels, int) else list(in_channels)
        if not ins:
            raise ValueError('MultiScaleFusionNeck: in_channels is empty')
        if out_channels is None:
            outs = list(ins)
        else:
            outs = [out_channels] * len(ins) if isinstance(out_channels, int) \
                else list(out_channels)
        if len(outs) != len(ins):
            raise ValueError(f'MultiScaleFusionNeck: {len(ins)} in_channels but {len(outs)} '
                             'out_channels')
        self.in_channels, self.out_channels = ins, outs
        self.fusions = nn.ModuleList(
            MultiScaleFeatureFusion(c_in, c_out, kernel_sizes=tuple(kernel_sizes),
                                    fusion=fusion)
            for c_in, c_out in zip(ins, outs))
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(1) if pool else None

    def forward(self, inputs: Union[torch.Tensor, Sequence[torch.Tensor]]
                ) -> Tuple[torch.Tensor, ...]:
        feats = (inputs, ) if isinstance(inputs, torch.Tensor) else tuple(inputs)
        if len(feats) != len(self.fusions):
            raise ValueError(f'MultiScaleFusionNeck was built for {len(self.fusions)} levels '
                             f'(in_channels={self.in_channels}) but got {len(feats)} feature '
                             'maps; set the backbone out_indices to match')
        outs = []
        for fusion, x in zip(self.fusions, feats):
            y = self.act(fusion(x))
            outs.append(self.pool(y).flatten(1) if self.pool is not None else y)
        return tuple(outs)


for _registry in (MMPRETRAIN_MODELS, MMDET_MODELS):
    if _registry.module_dict.get('MultiScaleFusionNeck') is not MultiScaleFusionNeck:
        _registry.register_module(name='MultiScaleFusionNeck', module=MultiScaleFusionNeck)
