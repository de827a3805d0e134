"""Dynamic mask convolution ResNets for MMPretrain.

The paper (Jiang, You, Zhang, "Dynamic mask convolution for image
classification networks", CAAI Trans. Intell. Syst. 21(2), 2026) is known only
by its abstract: a residual network whose convolutions are multi-branch
dynamic mask convolutions, with an adaptive enhancement module (pixel- and
channel-level attention) inside residual learning. mmdyn builds it from the
framework's own ResNet by injection (:class:`ResNetDynMixin`):

* ``dyn_conv`` (default ``dict(type='DMC')``, :class:`~mmdyn.ops.DynamicMaskConv2d`)
  replaces the ``dyn_convs`` of every block (default ``('conv2',)``: the 3x3
  conv of a Bottleneck, the second 3x3 of a BasicBlock);
* ``enhance`` (default ``dict(type='AdaptiveEnhancement')``) is applied to
  each block's residual branch before the residual sum (the first module of
  ``block.residual_plugins``, see :mod:`~mmdyn.models.backbones.block_plugins`);
  ``None`` drops it (ablation).

What is chosen where the abstract is silent is listed in ``docs/dmc_design.md``.
``DMCResNetCIFAR`` has the 3x3 stride-1 stem without max-pool for 32x32
inputs (CIFAR-10/100, SVHN); ``DMCResNet`` the ImageNet stem (Imagenette,
Imagewoof).

Example::

    backbone=dict(type='DMCResNetCIFAR', depth=18,
                  dyn_conv=dict(type='DMC', branch_dilations=(1, 2, 3)),
                  enhance=dict(type='AdaptiveEnhancement', reduction=16))
"""
import copy
from typing import Optional, Sequence

from mmpretrain.models.backbones import ResNet as MMPretrainResNet
from mmpretrain.models.backbones import ResNet_CIFAR as MMPretrainResNetCIFAR
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS

from ._inject import ResNetDynMixin, resolve_placement

DEFAULT_DMC = dict(type='DMC')
DEFAULT_ENHANCE = dict(type='AdaptiveEnhancement')


class DMCResNetMixin(ResNetDynMixin):
    """DMC defaults on top of :class:`ResNetDynMixin`.

    Args:
        dyn_conv (dict): Layer replacing the selected block convs.
            Default: ``dict(type='DMC')``.
        dyn_convs (Sequence[str] | None): Which block convs. Default:
            ``('conv2',)``, or the preset's when ``dyn_placement`` is given.
        enhance (dict | None): Module applied before every residual sum (of
            the stages with DMC layers: ``stage_with_dyn`` or the preset's), built with
            ``in_channels`` = the block's output channels. Default:
            ``dict(type='AdaptiveEnhancement')``; None: no enhancement.
        block_plugins (Sequence[dict] | None): Further plugins, applied after
            ``enhance`` (see :func:`~mmdyn.models.backbones.block_plugins.add_block_plugins`).
        **kwargs: :class:`ResNetDynMixin` and parent ``ResNet`` arguments.
    """

    def __init__(self, *, dyn_conv: dict = DEFAULT_DMC,
                 dyn_convs: Optional[Sequence[str]] = None,
                 enhance: Optional[dict] = DEFAULT_ENHANCE,
                 block_plugins: Optional[Sequence[dict]] = None,
                 stage_with_dyn: Optional[Sequence[bool]] = None,
                 dyn_placement: Optional[str] = None, **kwargs):
        if enhance is not None and (not isinstance(enhance, dict) or 'type' not in enhance):
            raise TypeError(f'enhance must be a module config dict with a "type" key or None, '
                            f'got {enhance!r}')
        if dyn_convs is None and dyn_placement is None:
            dyn_convs = ('conv2', )
        plugins = list(block_plugins or [])
        if enhance is not None:
            # The enhancement follows the DMC stages (explicit or from a preset).
            stages, _ = resolve_placement(kwargs.get('num_stages', 4), stage_with_dyn,
                                          dyn_convs, dyn_placement)
            plugins.insert(0, dict(cfg=copy.deepcopy(enhance), stages=stages))
        super().__init__(dyn_conv=dyn_conv, dyn_convs=dyn_convs, stage_with_dyn=stage_with_dyn,
                         dyn_placement=dyn_placement, block_plugins=plugins, **kwargs)
        self.enhance_cfg = copy.deepcopy(enhance)


@MMPRETRAIN_MODELS.register_module(name='DMCResNet')
class DMCResNet(DMCResNetMixin, MMPretrainResNet):
    """mmpretrain ``ResNet`` (7x7 stem + max-pool) with dynamic mask
    convolutions and adaptive enhancement (registered as ``DMCResNet``)."""


@MMPRETRAIN_MODELS.register_module(name='DMCResNetCIFAR')
class DMCResNetCIFAR(DMCResNetMixin, MMPretrainResNetCIFAR):
    """mmpretrain ``ResNet_CIFAR`` (3x3 stride-1 stem, no max-pool; for 32x32
    inputs) with dynamic mask convolutions and adaptive enhancement
    (registered as ``DMCResNetCIFAR``)."""
