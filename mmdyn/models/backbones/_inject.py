"""Framework-neutral logic of the dynamic backbones: which convolutions become
dynamic (options, placement presets) and how a static ``nn.Conv2d`` is swapped
for an mmdyn layer with the same geometry. Inflating a static checkpoint into
the kernel banks is in :mod:`.inflation`, the modules before the residual sum
(``block_plugins``) in :mod:`.block_plugins`.

Nothing here imports mmdet or mmpretrain: the mixins only rely on the attribute
conventions shared by both frameworks' ``ResNet`` (``conv1``/``stem``,
``res_layers``, blocks with ``conv1``..``conv3`` and ``downsample``) and
``MobileNetV2`` (``conv1`` stem, ``layers`` = ``layer1``..``layer7`` +
``conv2``, ``ConvModule.conv``). The thin registered classes live in
:mod:`.dyn_resnet` and :mod:`.dyn_mobilenet_v2`.

Placement presets (Zhang et al., "A2D2C: Adaptive attention-driven dynamic
convolution for local feature adaptation", Pattern Recognition 2026, Sec. 5.1,
Fig. 6-7, Tables 8-9; the reading is argued in ``docs/backbones.md``):

==================  ==========================================================
``all_block_convs``  conv1/conv2/(conv3) of every block of every stage; stem,
                     downsample and fc static (what official ODConv replaces)
``initial``          the stem convolution only (Fig. 7; Table 8's 11.72M =
                     11.69M + 3 extra copies of the 7x7x3x64 stem kernel)
``median``           block convs of the middle stages (2 and 3 of 4)
``terminal``         block convs of the last stage (4 of 4)
==================  ==========================================================
"""
import copy
from collections import OrderedDict
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import torch.nn as nn

from ..layers import build_dyn_conv_layer
from .block_plugins import add_block_plugins
from .inflation import load_inflated_checkpoint
from .kernel_warehouse import (build_warehouse_layers, freeze_warehouses, is_kernel_warehouse,
                               mobilenet_v2_warehouse_names, resnet_warehouse_names)

#: Names accepted in ``dyn_convs``.
ALLOWED_CONVS = ('stem', 'conv1', 'conv2', 'conv3', 'downsample')
#: Block convs replaced by default (and by ``all_block_convs``).
BLOCK_CONVS = ('conv1', 'conv2', 'conv3')
#: Convs replaced by default with KernelWarehouse (its official placement: the
#: block convs and the strided ``downsample`` convs, see :mod:`.kernel_warehouse`).
KW_CONVS = BLOCK_CONVS + ('downsample', )
#: Names accepted in ``dyn_placement``.
PRESETS = ('all_block_convs', 'initial', 'median', 'terminal')
#: Default dynamic layer of the backbones.
DEFAULT_DYN_CONV = dict(type='A2D2CPlus', kernel_num=4)


def resolve_placement(num_stages: int, stage_with_dyn: Optional[Sequence[bool]] = None,
                      dyn_convs: Optional[Sequence[str]] = None,
                      dyn_placement: Optional[str] = None) -> Tuple[Tuple[bool, ...],
                                                                    Tuple[str, ...]]:
    """Turn the user's placement options into ``(stage_with_dyn, dyn_convs)``.

    Args:
        num_stages (int): Residual stages of the backbone.
        stage_with_dyn (Sequence[bool] | None): Per stage, whether its block
            convs become dynamic. ``None``: all True, or what the preset says.
        dyn_convs (Sequence[str] | None): Which convs, from
            :data:`ALLOWED_CONVS`. ``'stem'`` is independent of
            ``stage_with_dyn``; ``'conv3'`` is skipped in BasicBlocks.
            ``None``: ``('conv1', 'conv2', 'conv3')`` or the preset's.
        dyn_placement (str | None): A preset from :data:`PRESETS`.

    Returns:
        tuple: ``(stage_with_dyn, dyn_convs)`` as tuples.

    Raises:
        ValueError: Unknown preset or conv name, wrong ``stage_with_dyn``
            length, or explicit options that contradict the preset.
    """
    if dyn_placement is not None:
        if dyn_placement not in PRESETS:
            raise ValueError(f'unknown dyn_placement {dyn_placement!r}; presets are '
                             f'{", ".join(PRESETS)}')
        last = num_stages - 1
        if dyn_placement == 'all_block_convs':
            p_stages, p_convs = [True] * num_stages, BLOCK_CONVS
        elif dyn_placement == 'initial':
            p_stages, p_convs = [False] * num_stages, ('stem', )
        elif dyn_placement == 'median':
            p_stages = [0 < i < last for i in range(num_stages)]
            p_convs = BLOCK_CONVS
        else:  # terminal
            p_stages, p_convs = [i == last for i in range(num_stages)], BLOCK_CONVS
        p_stages = tuple(p_stages)
        if stage_with_dyn is not None and tuple(bool(s) for s in stage_with_dyn) != p_stages:
            raise ValueError(f'dyn_placement={dyn_placement!r} sets stage_with_dyn={p_stages}, '
                             f'which conflicts with the explicit stage_with_dyn='
                             f'{tuple(stage_with_dyn)}; pass one or the other')
        if dyn_convs is not None and set(dyn_convs) != set(p_convs):
            raise ValueError(f'dyn_placement={dyn_placement!r} sets dyn_convs={p_convs}, '
                             f'which conflicts with the explicit dyn_convs='
                             f'{tuple(dyn_convs)}; pass one or the other')
        stage_with_dyn, dyn_convs = p_stages, p_convs
    if stage_with_dyn is None:
        stage_with_dyn = (True, ) * num_stages
    if dyn_convs is None:
        dyn_convs = BLOCK_CONVS
    if isinstance(dyn_convs, str):
        dyn_convs = (dyn_convs, )
    stage_with_dyn = tuple(bool(s) for s in stage_with_dyn)
    if len(stage_with_dyn) != num_stages:
        raise ValueError(f'stage_with_dyn has {len(stage_with_dyn)} entries but the backbone '
                         f'has num_stages={num_stages}; give one bool per stage')
    unknown = [c for c in dyn_convs if c not in ALLOWED_CONVS]
    if unknown:
        raise ValueError(f'unknown dyn_convs name(s) {unknown}; allowed names are '
                         f'{", ".join(ALLOWED_CONVS)}')
    return stage_with_dyn, tuple(dyn_convs)


def check_dyn_conv(dyn_conv) -> None:
    """Refuse a ``dyn_conv`` that is neither ``None`` (the static network) nor
    a layer config dict with a ``type``."""
    if dyn_conv is not None and (not isinstance(dyn_conv, dict) or 'type' not in dyn_conv):
        raise TypeError(f'dyn_conv must be None (the static network) or a layer config dict '
                        f'with a "type" key, got {dyn_conv!r}')


def make_dynamic(static: nn.Module, dyn_conv: dict) -> nn.Module:
    """Build the mmdyn layer ``dyn_conv`` with the geometry of ``static``.

    Args:
        static (nn.Conv2d): The convolution to replace.
        dyn_conv (dict): Layer config, e.g. ``dict(type='ODConv', kernel_num=4)``.

    Returns:
        nn.Module: The dynamic layer (freshly initialised by its own
        ``reset_parameters``).
    """
    if not isinstance(static, nn.Conv2d):
        raise TypeError(f'can only replace nn.Conv2d modules, got {type(static).__name__}')
    if static.padding_mode != 'zeros':
        raise ValueError(f'padding_mode={static.padding_mode!r} is not supported by the '
                         'mmdyn layers (zeros only)')
    return build_dyn_conv_layer(
        copy.deepcopy(dyn_conv), static.in_channels, static.out_channels,
        static.kernel_size, stride=static.stride, padding=static.padding,
        dilation=static.dilation, groups=static.groups, bias=static.bias is not None)


def replace_conv(root: nn.Module, name: str, dyn_conv: dict) -> None:
    """Replace the ``nn.Conv2d`` at dotted path ``name`` inside ``root``."""
    parent_name, _, attr = name.rpartition('.')
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, attr, make_dynamic(getattr(parent, attr), dyn_conv))


class _DynBackboneMixin:
    """Shared part of every dynamic backbone: bookkeeping of the injected layers
    and ``init_weights`` with pretrained inflation.

    Attributes:
        dyn_conv_names (list[str]): Dotted names of the injected dynamic layers.
    """

    #: ``sharing_range`` of KernelWarehouse when ``dyn_conv`` gives none.
    kw_default_sharing: Tuple[str, ...] = ('layer', 'conv')

    def _inject(self, names: Iterable[str], dyn_conv: Optional[dict]) -> None:
        check_dyn_conv(dyn_conv)
        self.dyn_conv_cfg = copy.deepcopy(dyn_conv)
        if dyn_conv is None:  # the static network, as the parent builds it
            self.dyn_conv_names = []
            return
        if is_kernel_warehouse(dyn_conv):
            self.dyn_conv_names = build_warehouse_layers(
                self, self._kw_names(list(names)), dyn_conv, self.kw_default_sharing)
        else:
            self.dyn_conv_names = []
            for name in names:
                replace_conv(self, name, dyn_conv)
                self.dyn_conv_names.append(name)
        # Frozen stages were frozen before injection: freeze the new params too.
        self._freeze_stages()

    def _kw_names(self, names: List[str]) -> Dict[str, str]:  # pragma: no cover - abstract
        """``{conv name: official KernelWarehouse name}`` for the targets ``names``."""
        raise NotImplementedError

    def _freeze_stages(self) -> None:
        """The parent's freezing, then the warehouses its frozen layers draw from."""
        super()._freeze_stages()
        freeze_warehouses(self)

    def dyn_modules(self) -> Dict[str, nn.Module]:
        """The injected dynamic layers by dotted name."""
        return OrderedDict((n, self.get_submodule(n)) for n in self.dyn_conv_names)

    def train(self, mode: bool = True):
        """The parent's ``train`` (frozen stages, ``norm_eval`` over every
        ``_BatchNorm``, attention BNs included), returning ``self`` like
        ``nn.Module.train`` (the frameworks' ResNet/MobileNetV2 return None)."""
        super().train(mode)
        return self

    def init_weights(self) -> None:
        """Parent's init; with ``init_cfg=dict(type='Pretrained', checkpoint=...,
        prefix=None)`` a *static* (or dynamic) checkpoint is inflated instead
        (:func:`~.inflation.load_inflated_checkpoint`).

        Without a checkpoint the injected layers keep their own per-kernel
        ``reset_parameters`` init: the parent's ``Kaiming(layer='Conv2d')``
        never matches them (they are not ``nn.Conv2d``), and they are
        re-initialised after the parent's init so that init cannot reach their
        inner ``nn.Conv2d`` modules (DCD's ``p``/``q``) either.
        """
        cfg = self.init_cfg
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            zero_init = getattr(self, 'zero_init_residual', None)
            self.init_cfg = None
            if zero_init is not None:
                self.zero_init_residual = False
            try:
                super().init_weights()
            finally:
                self.init_cfg = cfg
                if zero_init is not None:
                    self.zero_init_residual = zero_init
            load_inflated_checkpoint(self, cfg['checkpoint'], prefix=cfg.get('prefix'),
                                     map_location=cfg.get('map_location', 'cpu'))
            return
        super().init_weights()
        for module in self.dyn_modules().values():
            module.init_weights()


def check_out_indices(kwargs: dict) -> None:
    """Refuse an ``out_indices`` of a ResNet's keyword arguments that the
    parent would only ``assert`` on (or silently ignore, for negative values):
    it must be a non-empty list of stage indices in ``[0, num_stages - 1]``."""
    indices, stages = kwargs.get('out_indices'), kwargs.get('num_stages', 4)
    if 'out_indices' not in kwargs or not isinstance(stages, int):
        return  # the parent's defaults / its own check of num_stages
    ok = isinstance(indices, (list, tuple)) and len(indices) > 0 and all(
        isinstance(i, int) and not isinstance(i, bool) and 0 <= i < stages for i in indices)
    if not ok:
        raise ValueError(f'out_indices must be a non-empty list of stage indices in '
                         f'[0, {stages - 1}] (num_stages={stages}), got {indices!r}')


class ResNetDynMixin(_DynBackboneMixin):
    """Turns a framework ``ResNet`` (mmdet, mmpretrain, ResNet_CIFAR) into a
    dynamic one. Put it first in the bases: ``class X(ResNetDynMixin, ResNet)``.

    Args:
        *args: The parent ``ResNet``'s positional arguments (``depth``, ...).
        dyn_conv (dict | None): mmdyn layer config for the replaced convs;
            ``None`` keeps the parent's static network (same parameters).
            Default: ``dict(type='A2D2CPlus', kernel_num=4)``.
        stage_with_dyn (Sequence[bool] | None): Per stage, whether its blocks'
            convs are replaced; length ``num_stages``. Default: all stages.
        dyn_convs (Sequence[str] | None): Which convs, from ``'stem'``,
            ``'conv1'``, ``'conv2'``, ``'conv3'``, ``'downsample'``.
            Default: ``('conv1', 'conv2', 'conv3')``.
        dyn_placement (str | None): Preset, one of :data:`PRESETS`; sets
            ``stage_with_dyn``/``dyn_convs``. Default: None.
        block_plugins (Sequence[dict] | None): Modules applied to the output
            of each residual branch *before the residual sum*, e.g.
            ``[dict(cfg=dict(type='AdaptiveEnhancement'), stages=(True,) * 4)]``
            (see :func:`~.block_plugins.add_block_plugins`; mmdet's and
            mmpretrain's blocks alike). Default: None.
        **kwargs: The parent ``ResNet``'s arguments (``depth``,
            ``out_indices``, ``frozen_stages``, ``norm_eval``, ``init_cfg``...).
    """

    def __init__(self, *args, dyn_conv: Optional[dict] = DEFAULT_DYN_CONV,
                 stage_with_dyn: Optional[Sequence[bool]] = None,
                 dyn_convs: Optional[Sequence[str]] = None,
                 dyn_placement: Optional[str] = None,
                 block_plugins: Optional[Sequence[dict]] = None, **kwargs):
        check_out_indices(kwargs)
        check_dyn_conv(dyn_conv)
        if is_kernel_warehouse(dyn_conv) and dyn_convs is None and dyn_placement is None:
            dyn_convs = KW_CONVS
        super().__init__(*args, **kwargs)
        self.stage_with_dyn, self.dyn_convs = resolve_placement(
            self.num_stages, stage_with_dyn, dyn_convs, dyn_placement)
        self.dyn_placement = dyn_placement
        self.block_plugin_names = add_block_plugins(self, block_plugins)
        self._inject(self._resnet_targets(), dyn_conv)

    def _resnet_targets(self) -> List[str]:
        names = []
        if 'stem' in self.dyn_convs:
            if getattr(self, 'deep_stem', False):
                names += [f'stem.{n}' for n, m in self.stem.named_modules()
                          if isinstance(m, nn.Conv2d)]
            else:
                names.append('conv1')
        for stage, layer_name in enumerate(self.res_layers):
            if not self.stage_with_dyn[stage]:
                continue
            for b, block in enumerate(getattr(self, layer_name)):
                for conv in ('conv1', 'conv2', 'conv3'):
                    if conv in self.dyn_convs and isinstance(getattr(block, conv, None),
                                                             nn.Conv2d):
                        names.append(f'{layer_name}.{b}.{conv}')
                if 'downsample' in self.dyn_convs and block.downsample is not None:
                    names += [f'{layer_name}.{b}.downsample.{n}'
                              for n, m in block.downsample.named_modules()
                              if isinstance(m, nn.Conv2d)]
        return names

    def _kw_names(self, names: List[str]) -> Dict[str, str]:
        return resnet_warehouse_names(self, names)


class MobileNetV2DynMixin(_DynBackboneMixin):
    """Turns a framework ``MobileNetV2`` into a dynamic one as official ODConv
    does (Li, Zhou, Yao, ICLR 2022; code OSVAI/ODConv): the stem ``conv1``
    and the classifier stay static; every pw/dw conv of the inverted residual
    blocks (``layer1``..``layer7``) and the last 1x1 conv (``conv2``) become
    dynamic. KernelWarehouse (``dyn_conv=dict(type='KW', ...)``) follows its
    own official placement, the stem included (:mod:`.kernel_warehouse`).

    Args:
        *args: The parent ``MobileNetV2``'s positional arguments
            (``widen_factor``, ...).
        dyn_conv (dict | None): mmdyn layer config; ``None`` keeps the
            parent's static network. Default: ``dict(type='A2D2CPlus', kernel_num=4)``.
        **kwargs: The parent ``MobileNetV2``'s arguments (``widen_factor``,
            ``out_indices``, ``frozen_stages``, ``norm_eval``, ``init_cfg``...).
    """

    kw_default_sharing = ('layer', 'pwconv')

    def __init__(self, *args, dyn_conv: Optional[dict] = DEFAULT_DYN_CONV, **kwargs):
        check_dyn_conv(dyn_conv)
        super().__init__(*args, **kwargs)
        names = [f'{layer_name}.{n}' for layer_name in self.layers
                 for n, m in getattr(self, layer_name).named_modules() if isinstance(m, nn.Conv2d)]
        self._inject(names, dyn_conv)

    def _kw_names(self, names: List[str]) -> Dict[str, str]:
        """KernelWarehouse's official placement: the stem too (``names`` are
        the ODConv placement, without it)."""
        return mobilenet_v2_warehouse_names(self)
