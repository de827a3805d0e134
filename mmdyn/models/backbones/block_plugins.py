"""Modules applied to the residual branch of ResNet blocks, before the residual sum.

``block_plugins`` of the dynamic ResNets (and ``enhance`` of the DMC ResNets)
give every residual block of the chosen stages a named child,
``block.residual_plugins`` (:class:`ResidualPlugins`), applied here::

    out = norm_last(conv_last(...))    # the residual branch
    out = block.residual_plugins(out)  # <- the plugins, in order
    out = drop_path(out)               # (mmpretrain blocks)
    out += identity

The insertion point is the output of the block's last norm layer (``norm2`` of
a ``BasicBlock``, ``norm3`` of a ``Bottleneck``; the same property names in
mmdet and mmpretrain), which both frameworks' blocks feed straight into the
residual sum (in mmdet's ``Bottleneck``, into its own ``after_conv3``
plugins first). A forward hook on that norm layer applies the plugins; the
blocks' own ``forward`` is not replaced. The hook is re-attached before every
block forward when the norm module was swapped (``SyncBatchNorm`` conversion
or reversion, conv-BN fusion), so it cannot be lost silently.

State-dict keys: ``layerS.B.residual_plugins.N.*``. Checkpoints written when
the plugins wrapped ``drop_path`` (``layerS.B.drop_path.plugins.N.*``) load
unchanged: a load-state-dict pre-hook of the block renames those keys
(:func:`rename_legacy_plugin_keys` does the same for a whole state dict).
"""
import copy
import re
from collections import OrderedDict
from typing import Any, List, Mapping, Optional, Sequence

import torch
import torch.nn as nn

from mmdyn.utils.state_dict import register_key_upgrade

#: Name of the plugin container on each block.
PLUGINS_ATTR = 'residual_plugins'
_LEGACY_KEY = re.compile(r'(^|\.)drop_path\.plugins\.')


class ResidualPlugins(nn.Sequential):
    """The shape-preserving modules a ResNet block applies, in order, to its
    residual branch before the residual sum (see the module docstring)."""


@register_key_upgrade
def rename_legacy_plugin_keys(state_dict: Mapping[str, Any]) -> 'OrderedDict[str, Any]':
    """Rename the block-plugin keys of an older checkpoint,
    ``...drop_path.plugins.N.*`` -> ``...residual_plugins.N.*``; other keys are
    kept unchanged (a copy is returned)."""
    return OrderedDict((_LEGACY_KEY.sub(rf'\g<1>{PLUGINS_ATTR}.', k), v)
                       for k, v in state_dict.items())


def _rename_legacy_keys_hook(block, state_dict, prefix, *args) -> None:
    """Load-state-dict pre-hook of a block with plugins: renames its legacy
    keys in place (``state_dict`` is the dict the block's children load from)."""
    legacy = f'{prefix}drop_path.plugins.'
    for key in [k for k in state_dict if k.startswith(legacy)]:
        state_dict[f'{prefix}{PLUGINS_ATTR}.{key[len(legacy):]}'] = state_dict.pop(key)


class _ApplyPlugins:
    """Forward hook of a block's last norm layer: returns the plugins' output
    in place of the norm's. Also the block's forward pre-hook that keeps it
    attached to the current norm module."""

    def __init__(self, plugins: ResidualPlugins, norm_name: str):
        self.plugins = plugins
        self.norm_name = norm_name

    def __call__(self, norm: nn.Module, args, output: torch.Tensor) -> torch.Tensor:
        return self.plugins(output)

    def attach(self, block: nn.Module, args=None) -> None:
        norm = getattr(block, self.norm_name)
        if not any(hook is self for hook in norm._forward_hooks.values()):
            norm.register_forward_hook(self)


def _last_norm_name(block: nn.Module) -> str:
    for name in ('norm3', 'norm2'):  # Bottleneck, BasicBlock
        if isinstance(getattr(block, name, None), nn.Module):
            return name
    raise TypeError(f'block_plugins needs ResNet BasicBlock/Bottleneck blocks (a norm2 or '
                    f'norm3 before the residual sum); {type(block).__name__} has neither')


def attach_residual_plugins(block: nn.Module, plugins: Sequence[nn.Module]) -> ResidualPlugins:
    """Give ``block`` the child ``residual_plugins`` and apply it to the output
    of the block's last norm layer.

    Returns:
        ResidualPlugins: The new child.

    Raises:
        TypeError: ``block`` is no ResNet block, or already has plugins.
    """
    if hasattr(block, PLUGINS_ATTR):
        raise TypeError(f'{type(block).__name__} already has {PLUGINS_ATTR}')
    hook = _ApplyPlugins(ResidualPlugins(*plugins), _last_norm_name(block))
    block.add_module(PLUGINS_ATTR, hook.plugins)
    hook.attach(block)
    block.register_forward_pre_hook(hook.attach)
    block.register_load_state_dict_pre_hook(_rename_legacy_keys_hook)
    return hook.plugins


def _branch_channels(block: nn.Module, norm_name: str) -> int:
    """Output channels of the residual branch (its last conv's)."""
    return getattr(block, 'conv' + norm_name[-1]).out_channels


def add_block_plugins(resnet: nn.Module, block_plugins: Optional[Sequence[dict]]) -> List[str]:
    """Insert plugin modules before the residual sum of a ResNet's blocks.

    Args:
        resnet: An mmpretrain ``ResNet`` / ``ResNet_CIFAR`` or mmdet ``ResNet``
            (``res_layers`` of ``BasicBlock`` / ``Bottleneck``).
        block_plugins: Entries ``dict(cfg=dict(type=..., **options),
            stages=(bool, ...))``; ``cfg`` is built from MMEngine's registries
            with ``in_channels`` = the block's output channels; ``stages``
            (default: all) has one bool per stage. Entries are applied in
            order.

    Returns:
        list[str]: Dotted names of the inserted plugins
        (``layerS.B.residual_plugins.N``).

    Raises:
        TypeError / ValueError: Malformed entries or a wrong ``stages`` length.
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
            channels = _branch_channels(block, _last_norm_name(block))
            plugins = [MODELS.build(dict(copy.deepcopy(cfg), in_channels=channels))
                       for cfg in cfgs]
            attach_residual_plugins(block, plugins)
            names += [f'{layer_name}.{b}.{PLUGINS_ATTR}.{i}' for i in range(len(plugins))]
    return names
