"""Framework-neutral logic of the dynamic backbones: which convolutions become
dynamic (options, placement presets), how a static ``nn.Conv2d`` is swapped for
an mmdyn layer with the same geometry, and how a static checkpoint is inflated
into kernel banks.

Nothing here imports mmdet or mmpretrain: the mixins only rely on the attribute
conventions shared by both frameworks' ``ResNet`` (``conv1``/``stem``,
``res_layers``, blocks with ``conv1``..``conv3`` and ``downsample``) and
``MobileNetV2`` (``conv1`` stem, ``layers`` = ``layer1``..``layer7`` +
``conv2``, ``ConvModule.conv``). The thin registered classes live in
:mod:`.dyn_resnet` and :mod:`.dyn_mobilenet_v2`.

Placement presets (A2D2C paper, seeds/003 Sec. 5.1, Fig. 6-7, Tables 8-9; the
reading is argued in ``docs/backbones.md``):

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
import logging
from collections import OrderedDict
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from ..layers import build_dyn_conv_layer

#: Names accepted in ``dyn_convs``.
ALLOWED_CONVS = ('stem', 'conv1', 'conv2', 'conv3', 'downsample')
#: Block convs replaced by default (and by ``all_block_convs``).
BLOCK_CONVS = ('conv1', 'conv2', 'conv3')
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

    def _inject(self, names: Iterable[str], dyn_conv: dict) -> None:
        if dyn_conv is None or not isinstance(dyn_conv, dict) or 'type' not in dyn_conv:
            raise TypeError(f'dyn_conv must be a layer config dict with a "type" key, '
                            f'got {dyn_conv!r}')
        self.dyn_conv_cfg = copy.deepcopy(dyn_conv)
        self.dyn_conv_names = []
        for name in names:
            replace_conv(self, name, dyn_conv)
            self.dyn_conv_names.append(name)
        # Frozen stages were frozen before injection: freeze the new params too.
        self._freeze_stages()

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
        (:func:`load_inflated_checkpoint`).

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
        dyn_conv (dict): mmdyn layer config for the replaced convs.
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
            (see :func:`add_block_plugins`; mmpretrain blocks only, mmdet's
            ResNet has its own ``plugins``). Default: None.
        **kwargs: The parent ``ResNet``'s arguments (``depth``,
            ``out_indices``, ``frozen_stages``, ``norm_eval``, ``init_cfg``...).
    """

    def __init__(self, *, dyn_conv: dict = DEFAULT_DYN_CONV,
                 stage_with_dyn: Optional[Sequence[bool]] = None,
                 dyn_convs: Optional[Sequence[str]] = None,
                 dyn_placement: Optional[str] = None,
                 block_plugins: Optional[Sequence[dict]] = None, **kwargs):
        check_out_indices(kwargs)
        super().__init__(**kwargs)
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


class BeforeResidualSum(nn.Module):
    """Applies ``plugins`` in order, then the block's original ``drop_path``.

    It takes the place of ``drop_path`` in an mmpretrain ``BasicBlock`` /
    ``Bottleneck``, whose forward computes ``out = drop_path(norm_last(...));
    out += identity``: the plugins therefore see the residual branch output
    (after its last norm) and their result is what is added to the identity.
    The block's own forward is untouched.

    Args:
        plugins (Sequence[nn.Module]): Shape-preserving modules.
        drop_path (nn.Module): The block's ``DropPath`` (or ``Identity``).
    """

    def __init__(self, plugins: Sequence[nn.Module], drop_path: nn.Module):
        super().__init__()
        self.plugins = nn.ModuleList(plugins)
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for plugin in self.plugins:
            x = plugin(x)
        return self.drop_path(x)


def add_block_plugins(resnet: nn.Module, block_plugins: Optional[Sequence[dict]]) -> List[str]:
    """Insert plugin modules before the residual sum of a ResNet's blocks.

    Args:
        resnet: An mmpretrain ``ResNet`` / ``ResNet_CIFAR`` (blocks with
            ``drop_path`` and ``out_channels``).
        block_plugins: Entries ``dict(cfg=dict(type=..., **options),
            stages=(bool, ...))``; ``cfg`` is built from MMEngine's registries
            with ``in_channels`` = the block's output channels; ``stages``
            (default: all) has one bool per stage. Entries are applied in
            order.

    Returns:
        list[str]: Dotted names of the inserted plugins.

    Raises:
        TypeError / ValueError: Malformed entries or a wrong ``stages`` length.
        TypeError: The blocks have no ``drop_path`` (e.g. mmdet's ResNet; use
            its ``plugins`` option there).
    """
    if not block_plugins:
        return []
    from mmengine.registry import MODELS
    if isinstance(block_plugins, dict) or not isinstance(block_plugins, (list, tuple)):
        raise TypeError(f'block_plugins must be a list of dict(cfg=..., stages=...), got '
                        f'{block_plugins!r}')
    num_stages = len(resnet.res_layers)
    entries = []
    for entry in block_plugins:
        if not isinstance(entry, dict) or not isinstance(entry.get('cfg'), dict) \
                or 'type' not in entry['cfg']:
            raise TypeError(f'each block_plugins entry must be dict(cfg=dict(type=...), '
                            f'stages=...), got {entry!r}')
        unknown = set(entry) - {'cfg', 'stages'}
        if unknown:
            raise ValueError(f'unknown block_plugins keys {sorted(unknown)} in {entry!r} '
                             "(allowed: 'cfg', 'stages'; plugins always go before the "
                             'residual sum)')
        stages = tuple(bool(s) for s in entry.get('stages') or (True, ) * num_stages)
        if len(stages) != num_stages:
            raise ValueError(f'block_plugins stages has {len(stages)} entries but the backbone '
                             f'has {num_stages} stages: {entry!r}')
        entries.append((entry['cfg'], stages))
    names = []
    for stage, layer_name in enumerate(resnet.res_layers):
        for b, block in enumerate(getattr(resnet, layer_name)):
            cfgs = [cfg for cfg, stages in entries if stages[stage]]
            if not cfgs:
                continue
            if not hasattr(block, 'drop_path'):
                raise TypeError(f'block_plugins needs blocks with a drop_path before the '
                                f'residual sum (mmpretrain ResNet); {type(block).__name__} has '
                                "none (in mmdet's ResNet use its own plugins= option)")
            plugins = [MODELS.build(dict(copy.deepcopy(cfg), in_channels=block.out_channels))
                       for cfg in cfgs]
            block.drop_path = BeforeResidualSum(plugins, block.drop_path)
            names += [f'{layer_name}.{b}.drop_path.plugins.{i}' for i in range(len(plugins))]
    return names


class MobileNetV2DynMixin(_DynBackboneMixin):
    """Turns a framework ``MobileNetV2`` into a dynamic one as official ODConv
    does (REFERENCE Sec. 2): the stem ``conv1`` and the classifier stay static;
    every pw/dw conv of the inverted residual blocks (``layer1``..``layer7``)
    and the last 1x1 conv (``conv2``) become dynamic.

    Args:
        dyn_conv (dict): mmdyn layer config. Default:
            ``dict(type='A2D2CPlus', kernel_num=4)``.
        **kwargs: The parent ``MobileNetV2``'s arguments (``widen_factor``,
            ``out_indices``, ``frozen_stages``, ``norm_eval``, ``init_cfg``...).
    """

    def __init__(self, *, dyn_conv: dict = DEFAULT_DYN_CONV, **kwargs):
        super().__init__(**kwargs)
        names = [f'{layer_name}.{n}' for layer_name in self.layers
                 for n, m in getattr(self, layer_name).named_modules() if isinstance(m, nn.Conv2d)]
        self._inject(names, dyn_conv)


# --------------------------------------------------------------------------- inflation
def strip_prefix(state_dict: Mapping[str, torch.Tensor],
                 prefix: Optional[str] = None) -> Tuple[Dict[str, torch.Tensor], str]:
    """Select the backbone's keys of a checkpoint.

    Args:
        state_dict: Checkpoint weights.
        prefix: Keys to keep, e.g. ``'backbone.'``; ``None`` auto-detects
            ``'backbone.'`` (mmpretrain/mmdet models) and ``'module.'`` (DDP).

    Returns:
        tuple: ``(selected state dict with the prefix removed, prefix used)``.
    """
    keys = list(state_dict)
    if prefix is None:
        if keys and all(k.startswith('module.') for k in keys):
            state_dict = {k[len('module.'):]: v for k, v in state_dict.items()}
            keys = list(state_dict)
        prefix = 'backbone.' if any(k.startswith('backbone.') for k in keys) else ''
    if prefix and not prefix.endswith('.'):
        prefix += '.'
    out = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    if not out:
        raise ValueError(f'no key of the checkpoint starts with prefix {prefix!r}; '
                         f'first keys: {keys[:5]}')
    return out, prefix


def inflate_state_dict(model: nn.Module, src: Mapping[str, torch.Tensor]
                       ) -> Tuple[Dict[str, torch.Tensor], List[str], List[str]]:
    """Map a static (or already dynamic) state dict onto ``model``'s.

    Rules, per key present in both: same shape -> copied; a 4-D static kernel
    ``(C_out, C_in/g, kh, kw)`` into a 5-D bank ``(K, C_out, C_in/g, kh, kw)``
    -> ``weight[k] = static`` for every k; a 1-D static bias ``(C_out,)`` into a
    bias bank ``(K, C_out)`` -> copied into every row. A DCD layer whose
    ``p.weight`` is absent from ``src`` (inflated from a static conv) gets its
    residual ``p`` and its ``fc_scale`` zeroed, so it outputs exactly the static
    conv at init (``λ = hsigmoid2(0) = 1``, ``P = 0``).

    Returns:
        tuple: ``(state dict to load with strict=False, missing keys (keys a
        layer declares in ``optional_state_keys`` and BatchNorm counters
        excepted), unexpected keys)``.

    Raises:
        ValueError: A kernel whose shape cannot be inflated; names the key and
            both shapes.
    """
    target = model.state_dict()
    src = remap_torchvision_mobilenet_v2(model, src)
    out = {}
    for key, value in src.items():
        if key not in target:
            continue
        want = target[key]
        if value.shape == want.shape:
            out[key] = value.to(want.dtype).clone()
        elif value.dim() + 1 == want.dim() and tuple(want.shape[1:]) == tuple(value.shape):
            out[key] = value.to(want.dtype).unsqueeze(0).expand_as(want).clone()
        else:
            raise ValueError(f'cannot load checkpoint key {key!r}: checkpoint shape '
                             f'{tuple(value.shape)}, model shape {tuple(want.shape)} '
                             f'(a static kernel must equal one kernel of the bank)')
    from mmdyn.ops import DCDConv2d
    for name, module in model.named_modules():
        if isinstance(module, DCDConv2d) and f'{name}.weight' in out \
                and f'{name}.p.weight' not in src:
            out[f'{name}.p.weight'] = torch.zeros_like(module.p.weight)
            out[f'{name}.fc_scale.weight'] = torch.zeros_like(module.fc_scale.weight)
    # Keys a layer declares optional (its attention temperature) keep their
    # init without being reported: a static checkpoint cannot hold them.
    from mmdyn.engine.checkpoint import optional_state_keys
    optional = optional_state_keys(model)
    missing = [k for k in target if k not in out and k not in optional]
    unexpected = [k for k in src if k not in target]
    return out, missing, unexpected


def remap_torchvision_mobilenet_v2(model: nn.Module, src: Mapping[str, torch.Tensor]
                                   ) -> Mapping[str, torch.Tensor]:
    """Rename a torchvision MobileNetV2 state dict (``features.*``) to the
    mmpretrain/mmdet layout of ``model`` (``conv1``, ``layerN.M.conv.K``, ``conv2``,
    each a ConvModule with ``.conv`` and ``.bn``); other state dicts pass through.

    torchvision registers every convolution before its BatchNorm, in network
    order, as mmpretrain's ConvModules do; the i-th (conv, BN) of the checkpoint
    is the i-th ConvModule of the model. Shapes are checked by the caller.

    Raises:
        ValueError: The numbers of convolutions differ (not a MobileNetV2 of
            this width), naming both counts.
    """
    if not any(k.startswith('features.') for k in src):
        return src
    groups: List[Tuple[str, List[str]]] = []  # (conv weight key, its BN keys)
    for key, value in src.items():
        if not key.startswith('features.'):
            continue
        if key.endswith('.weight') and value.dim() == 4:
            groups.append((key, []))
        elif groups:
            groups[-1][1].append(key)
    modules = [name for name, m in model.named_modules()
               if hasattr(m, 'conv') and hasattr(m, 'bn') and isinstance(m.bn, nn.Module)]
    if len(groups) != len(modules):
        raise ValueError(f'torchvision MobileNetV2 checkpoint has {len(groups)} convolutions, '
                         f'the model {len(modules)} ConvModules (different width?)')
    out = {k: v for k, v in src.items() if not k.startswith('features.')}
    for (conv_key, bn_keys), name in zip(groups, modules):
        out[f'{name}.conv.weight'] = src[conv_key]
        bn_prefix = bn_keys[0].rsplit('.', 1)[0] if bn_keys else None
        for key in bn_keys:
            out[f'{name}.bn.{key[len(bn_prefix) + 1:]}'] = src[key]
    return out


def read_state_dict(checkpoint: str, map_location: str = 'cpu') -> Dict[str, torch.Tensor]:
    """Load a checkpoint (a file or any source MMEngine accepts, always with the
    weights-only allow-list: :func:`mmdyn.engine.read_checkpoint`);
    ``state_dict``/``model`` unwrapped."""
    from mmdyn.engine.checkpoint import read_checkpoint
    ckpt = read_checkpoint(checkpoint, map_location=map_location)
    if isinstance(ckpt, dict):
        for key in ('state_dict', 'model'):
            if key in ckpt and isinstance(ckpt[key], dict):
                return ckpt[key]
    return ckpt


def conv_weight_keys(model: nn.Module) -> List[str]:
    """The state-dict keys of every convolution kernel a static checkpoint of
    this backbone provides: the kernel (bank) ``weight`` of each mmdyn layer
    and of each ``nn.Conv2d`` that is not part of an mmdyn layer (attention
    convolutions are new and excluded)."""
    from mmdyn.ops._base import DynamicConvBase
    dyn = [name for name, m in model.named_modules() if isinstance(m, DynamicConvBase)]
    keys = []
    for name, module in model.named_modules():
        inside = any(name.startswith(d + '.') for d in dyn)
        if (name in dyn or (isinstance(module, nn.Conv2d) and not inside)) \
                and isinstance(getattr(module, 'weight', None), torch.Tensor):
            keys.append(f'{name}.weight')
    return keys


def count_inflated_convs(model: nn.Module, state: Mapping[str, torch.Tensor]
                         ) -> Tuple[int, List[str]]:
    """``(number of convolution kernels of model found in state, the keys not
    found)`` (see :func:`conv_weight_keys`)."""
    expected = conv_weight_keys(model)
    absent = [k for k in expected if k not in state]
    return len(expected) - len(absent), absent


def load_inflated_checkpoint(model: nn.Module, checkpoint: str, prefix: Optional[str] = None,
                             map_location: str = 'cpu',
                             logger: Optional[logging.Logger] = None) -> Tuple[List[str],
                                                                               List[str]]:
    """Initialise ``model`` from a static (or dynamic) checkpoint file.

    Returns:
        tuple: ``(missing keys, unexpected keys)``; both are also logged.
    """
    from mmengine.logging import MMLogger, print_log
    src, _ = strip_prefix(read_state_dict(checkpoint, map_location), prefix)
    state, missing, unexpected = inflate_state_dict(model, src)
    found, absent = count_inflated_convs(model, state)
    if found == 0 and absent:
        raise ValueError(f'checkpoint {checkpoint} provides none of the {len(absent)} '
                         f'convolution kernels of {type(model).__name__} (e.g. '
                         f'{absent[:3]}); it is not a checkpoint of this backbone (or the '
                         f'prefix {prefix!r} is wrong)')
    model.load_state_dict(state, strict=False)
    logger = logger or MMLogger.get_current_instance()
    print_log(f'inflated {len(state)} tensors from {checkpoint} into {type(model).__name__} '
              f'({found} of {found + len(absent)} convolution kernels)', logger=logger)
    if absent:
        print_log(f'{len(absent)} convolution kernel(s) not in {checkpoint} (kept their own '
                  f'init): {absent}', logger=logger, level=logging.WARNING)
    if missing:
        print_log(f'missing keys (kept their own init): {missing}', logger=logger,
                  level=logging.WARNING)
    if unexpected:
        print_log(f'unexpected keys (ignored): {unexpected}', logger=logger,
                  level=logging.WARNING)
    return missing, unexpected
