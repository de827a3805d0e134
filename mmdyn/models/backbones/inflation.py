"""Inflation of a static checkpoint into a dynamic backbone.

A dynamic layer holds a bank of ``K`` kernels where the static convolution it
replaces holds one; :func:`inflate_state_dict` copies the static kernel into
every kernel of the bank, so a dynamic backbone starts from ImageNet (or any
static) weights. The backbones' ``init_weights`` does it for
``init_cfg=dict(type='Pretrained', checkpoint=...)``
(:func:`load_inflated_checkpoint`), ``tools/model_converters/
convert_static_to_dynamic.py`` writes the result to a file. A torchvision
MobileNetV2 state dict (``features.*``) is renamed to the OpenMMLab layout
first (:func:`remap_torchvision_mobilenet_v2`). See ``docs/checkpoints.md``.
"""
import logging
from typing import Dict, List, Mapping, Optional, Tuple

import torch
import torch.nn as nn

from mmdyn.ops import DCDConv2d, KWConv2d
from mmdyn.ops._base import DynamicConvBase
from mmdyn.utils.state_dict import optional_state_keys, strip_prefix
from .block_plugins import rename_legacy_plugin_keys
from .kernel_warehouse import inflate_warehouse


def select_backbone_state(state_dict: Mapping[str, torch.Tensor],
                          prefix: Optional[str] = None) -> Tuple[Dict[str, torch.Tensor], str]:
    """Select the backbone's keys of a checkpoint.

    Args:
        state_dict: Checkpoint weights.
        prefix: Keys to keep, e.g. ``'backbone.'``; ``None`` auto-detects
            ``'backbone.'`` (mmpretrain/mmdet models) and ``'module.'`` (DDP).

    Returns:
        tuple: ``(selected state dict with the prefix removed, prefix used)``.

    Raises:
        ValueError: A key is not a string (not a state dict), or no key starts
            with the prefix.
    """
    keys = list(state_dict)
    odd = [k for k in keys if not isinstance(k, str)]
    if odd:
        raise ValueError(f'the checkpoint is not a state dict: {len(odd)} of its {len(keys)} '
                         f'keys are not parameter names (first: {odd[0]!r})')
    if prefix is None:
        if keys and all(k.startswith('module.') for k in keys):
            state_dict = strip_prefix(state_dict, 'module.')
            keys = list(state_dict)
        prefix = 'backbone.' if any(k.startswith('backbone.') for k in keys) else ''
    if prefix and not prefix.endswith('.'):
        prefix += '.'
    out = dict(strip_prefix({k: v for k, v in state_dict.items() if k.startswith(prefix)},
                            prefix))
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
    conv at init (``λ = hsigmoid2(0) = 1``, ``P = 0``). A KernelWarehouse layer
    gets its static kernel cut into the cells its temperature-initialised
    attention selects, at temperature 1 (exactly the static conv; refused for
    ``cell_num_ratio < 1``: :func:`~.kernel_warehouse.inflate_warehouse`). Block-plugin keys of
    checkpoints written before the plugins had their own name
    (``drop_path.plugins.N``) are renamed first (:func:`rename_legacy_plugin_keys`).

    Returns:
        tuple: ``(state dict to load with strict=False, missing keys (keys a
        layer declares in ``optional_state_keys`` and BatchNorm counters
        excepted), unexpected keys)``.

    Raises:
        ValueError: A kernel whose shape cannot be inflated; names the key and
            both shapes.
    """
    target = model.state_dict()
    src = remap_torchvision_mobilenet_v2(model, rename_legacy_plugin_keys(src))
    out = {}
    consumed = inflate_warehouse(model, src, out)
    for key, value in src.items():
        if key not in target or key in out:
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
    for name, module in model.named_modules():
        if isinstance(module, DCDConv2d) and f'{name}.weight' in out \
                and f'{name}.p.weight' not in src:
            out[f'{name}.p.weight'] = torch.zeros_like(module.p.weight)
            out[f'{name}.fc_scale.weight'] = torch.zeros_like(module.fc_scale.weight)
    # Keys a layer declares optional (its attention temperature) keep their
    # init without being reported: a static checkpoint cannot hold them.
    optional = optional_state_keys(model)
    missing = [k for k in target if k not in out and k not in optional]
    unexpected = [k for k in src if k not in target and k not in consumed]
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
    from mmdyn.engine.checkpoint import read_checkpoint, require_checkpoint_dict
    ckpt = require_checkpoint_dict(read_checkpoint(checkpoint, map_location=map_location),
                                   checkpoint)
    for key in ('state_dict', 'model'):
        if key in ckpt and isinstance(ckpt[key], dict):
            return ckpt[key]
    return ckpt


def conv_weight_keys(model: nn.Module) -> List[str]:
    """The state-dict keys of every convolution kernel a static checkpoint of
    this backbone provides: the kernel (bank) ``weight`` of each mmdyn layer
    and of each ``nn.Conv2d`` that is not part of an mmdyn layer (attention
    convolutions are new and excluded). A KernelWarehouse layer has no kernel
    of its own: its ``temperature`` stands for it (written by the inflation
    when its static kernel was found, copied from a KW checkpoint)."""
    dyn = [name for name, m in model.named_modules() if isinstance(m, DynamicConvBase)]
    keys = []
    for name, module in model.named_modules():
        inside = any(name.startswith(d + '.') for d in dyn)
        if isinstance(module, KWConv2d):
            keys.append(f'{name}.temperature')
        elif (name in dyn or (isinstance(module, nn.Conv2d) and not inside)) \
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
    src, _ = select_backbone_state(read_state_dict(checkpoint, map_location), prefix)
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
