"""KernelWarehouse in the dynamic backbones: warehouse names, sharing, freezing
and static-checkpoint initialisation.

Li, Yao, "KernelWarehouse: Rethinking the Design of Dynamic Convolution",
ICML 2024 (official code OSVAI/KernelWarehouse). ``dyn_conv=dict(type='KW',
...)`` on ``DynResNet``/``DynResNetCIFAR``/``DynMobileNetV2`` replaces the
chosen convolutions by :class:`~mmdyn.ops.KWConv2d` layers that draw from one
backbone-level :class:`~mmdyn.ops.KernelWarehouse` (the child
``kw_warehouse``). Each convolution gets the official name
``stage{s}_layer{l}_{kind}{c}``; ``sharing_range`` then fuses every ``_``
-separated token that starts with one of its prefixes into the prefix, and
convolutions with the same fused name share a warehouse. With the official
``('layer', 'conv')`` a ResNet has one warehouse per stage. The first
convolution(s) of a stage are *handed over* to the previous stage's warehouse
(the official rule): a ResNet block's ``conv1`` and ``downsample`` of the first
block of stage ``s`` belong to stage ``s - 1``; a convolution handed over from
the first stage, and a stride-1 ``downsample``, stay static. In MobileNetV2 the
stem, every pw/dw convolution and the last 1x1 are KW (stages of the official
``[1, 2, 3, 4, 5, 6, 6]`` per block row, the same hand-over).

``dyn_conv`` keys (besides ``type``): the warehouse options
(``cell_num_ratio``, ``cell_inplane_ratio``, ``cell_outplane_ratio``,
``reduction``, ``nonlocal_basis_ratio``, ``spatial_partition``), the layer
options (``temperature``, ``strategy``), and ``sharing_range`` (tuple of name
prefixes; default ``('layer', 'conv')`` for ResNets, ``('layer', 'pwconv')`` for
MobileNetV2; ``()`` gives every convolution its own warehouse, the plain
per-layer mode), ``warehouse_overrides`` (``{warehouse name: options}``) and
``static_warehouses`` (``fnmatch`` patterns of warehouse names whose
convolutions stay ``nn.Conv2d``).
"""
import copy
import fnmatch
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Sequence, Set

import torch
import torch.nn as nn

from mmdyn.ops import KernelWarehouse, KWConv2d
from mmdyn.ops.kernel_warehouse import WAREHOUSE_DEFAULTS, partition_kernel

#: ``dyn_conv`` keys that configure the backbone's warehouses, not a layer.
PLAN_KEYS = ('sharing_range', 'warehouse_overrides', 'static_warehouses')
#: Layer options of ``KWConv2d`` a ``dyn_conv`` may give.
LAYER_KEYS = ('temperature', 'strategy')
#: MobileNetV2 block rows -> KW stage (official ``kw_stage_setting``).
MOBILENET_V2_STAGES = (1, 2, 3, 4, 5, 6, 6)


def is_kernel_warehouse(dyn_conv: Optional[dict]) -> bool:
    """Whether a ``dyn_conv`` config names the KernelWarehouse layer (``None``: no)."""
    if not isinstance(dyn_conv, dict):
        return False
    kind = dyn_conv.get('type')
    return kind is KWConv2d or kind in ('KW', 'KWConv2d')


def fuse_warehouse_name(name: str, sharing_range: Sequence[str]) -> str:
    """Official fusion: each ``_`` token starting with a prefix of
    ``sharing_range`` becomes that prefix (``stage1_layer3_conv0`` with
    ``('layer', 'conv')`` -> ``stage1_layer_conv``)."""
    tokens = []
    for token in name.split('_'):
        for prefix in sharing_range:
            if token.startswith(prefix):
                token = prefix
        tokens.append(token)
    return '_'.join(tokens)


def resnet_warehouse_names(backbone: nn.Module, targets: Sequence[str]) -> Dict[str, str]:
    """Official names of the ResNet convolutions in ``targets`` that become KW
    (``{dotted name: 'stage{s}_layer{l}_conv{c}'}``); handed over from the
    first stage or stride-1 ``downsample`` convolutions are left out."""
    wanted, names = set(targets), OrderedDict()
    if 'conv1' in wanted:
        names['conv1'] = 'stem_conv0'
    names.update((t, 'stem_conv0') for t in targets if t.startswith('stem.'))
    layer_idx = 0
    for stage, layer_name in enumerate(backbone.res_layers):
        for b, block in enumerate(getattr(backbone, layer_name)):
            prefix, first = f'{layer_name}.{b}', b == 0
            bottleneck = isinstance(getattr(block, 'conv3', None), nn.Module)
            conv1_stage = stage - 1 if first else stage
            if not bottleneck:
                conv1_stage = max(conv1_stage, 0)
            own = [(f'{prefix}.conv1', conv1_stage, layer_idx, 0)]
            inner = 0 if first else layer_idx
            own.append((f'{prefix}.conv2', stage, inner, 1))
            if bottleneck:
                own.append((f'{prefix}.conv3', stage, inner, 2))
            if block.downsample is not None:
                own += [(f'{prefix}.downsample.{n}', stage - 1 if m.stride != (1, 1) else -1,
                         layer_idx + 1, 0)
                        for n, m in block.downsample.named_modules() if isinstance(m, nn.Conv2d)]
            for name, s, idx, c in own:
                if name in wanted and s >= 0:
                    names[name] = f'stage{s}_layer{idx}_conv{c}'
            layer_idx = 1 if first else layer_idx + 1
    return names


def mobilenet_v2_warehouse_names(backbone: nn.Module) -> Dict[str, str]:
    """Official names of every MobileNetV2 convolution (stem, pw/dw, last 1x1)."""
    rows = [n for n in backbone.layers if n != 'conv2']
    if len(rows) != len(MOBILENET_V2_STAGES):
        raise ValueError(f'KernelWarehouse MobileNetV2 needs the standard {len(MOBILENET_V2_STAGES)}'
                         f' block rows (official stage setting), got {len(rows)}')
    names = OrderedDict(
        (f'conv1.{n}', 'stage0_conv0') for n, m in backbone.conv1.named_modules()
        if isinstance(m, nn.Conv2d))
    layer_idx = 0
    for row, layer_name in enumerate(rows):
        for b, block in enumerate(getattr(backbone, layer_name)):
            handover = b == 0 and row > 0 and \
                MOBILENET_V2_STAGES[row] != MOBILENET_V2_STAGES[row - 1]
            stage = MOBILENET_V2_STAGES[row] - handover
            seen_dw = False
            for n, m in block.named_modules():
                if not isinstance(m, nn.Conv2d):
                    continue
                if m.groups > 1:
                    kind, seen_dw = 'dwconv0', True
                else:
                    kind = 'pwconv1' if seen_dw else 'pwconv0'
                names[f'{layer_name}.{b}.{n}'] = f'stage{stage}_layer{layer_idx}_{kind}'
            layer_idx = 0 if handover else layer_idx + 1
    if 'conv2' in backbone.layers:
        names.update((f'conv2.{n}', f'stage{MOBILENET_V2_STAGES[-1]}_layer{layer_idx}_pwconv1')
                     for n, m in backbone.conv2.named_modules() if isinstance(m, nn.Conv2d))
    return names


def build_warehouse_layers(backbone: nn.Module, official_names: Mapping[str, str],
                           dyn_conv: dict, default_sharing: Sequence[str]) -> List[str]:
    """Replace the convolutions of ``official_names`` by ``KWConv2d`` layers
    drawing from one ``KernelWarehouse`` set as ``backbone.kw_warehouse``.

    Returns:
        The dotted names of the replaced convolutions.

    Raises:
        ValueError: An unknown ``dyn_conv`` key, a non-conv target, a pattern
            of ``static_warehouses`` that matches nothing, or the warehouse's
            own errors (bad ratios, cells that do not tile a member).
    """
    cfg = copy.deepcopy(dyn_conv)
    cfg.pop('type')
    known = set(WAREHOUSE_DEFAULTS) | set(PLAN_KEYS) | set(LAYER_KEYS)
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise ValueError(f'dyn_conv KW: unknown option(s) {unknown}; known: {sorted(known)}')
    sharing = tuple(cfg.pop('sharing_range', default_sharing))
    overrides = cfg.pop('warehouse_overrides', None)
    static = tuple(cfg.pop('static_warehouses', ()))
    layer_opts = {k: cfg.pop(k) for k in LAYER_KEYS if k in cfg}
    warehouse = KernelWarehouse(overrides=overrides, **cfg)
    fused = OrderedDict((name, fuse_warehouse_name(official, sharing))
                        for name, official in official_names.items())
    for pattern in static:
        if not any(fnmatch.fnmatchcase(w, pattern) for w in fused.values()):
            raise ValueError(f'dyn_conv KW: static_warehouses pattern {pattern!r} matches no '
                             f'warehouse; the warehouses are {sorted(set(fused.values()))}')
    replaced = []
    for name, wh_name in fused.items():
        if any(fnmatch.fnmatchcase(wh_name, p) for p in static):
            continue
        parent_name, _, attr = name.rpartition('.')
        parent = backbone.get_submodule(parent_name) if parent_name else backbone
        conv = getattr(parent, attr)
        if not isinstance(conv, nn.Conv2d) or conv.padding_mode != 'zeros':
            raise ValueError(f'dyn_conv KW: {name} is not an nn.Conv2d with zero padding')
        setattr(parent, attr, KWConv2d(
            conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
            conv.dilation, conv.groups, conv.bias is not None, warehouse=warehouse,
            warehouse_name=wh_name, **layer_opts))
        replaced.append(name)
    backbone.kw_warehouse = warehouse
    warehouse.build(order=[m for m in backbone.modules() if isinstance(m, KWConv2d)])
    return replaced


def freeze_warehouses(backbone: nn.Module) -> None:
    """Freeze every warehouse that a frozen layer draws from (a layer whose own
    parameters are all frozen, e.g. by ``frozen_stages``): frozen stages then
    compute exactly what they computed before training, and the layers of the
    next stage that share such a warehouse (the hand-over) train their
    attention only."""
    warehouse = getattr(backbone, 'kw_warehouse', None)
    if not isinstance(warehouse, KernelWarehouse) or not warehouse.built:
        return
    for name in warehouse.names():
        for layer in warehouse.members(name):
            params = list(layer.parameters())
            if params and not any(p.requires_grad for p in params):
                warehouse.cells[name].requires_grad_(False)
                break


def warehouse_prefix(model: nn.Module, warehouse: KernelWarehouse) -> str:
    """The state-dict prefix of ``warehouse`` inside ``model``."""
    for name, module in model.named_modules():
        if module is warehouse:
            return f'{name}.' if name else ''
    raise ValueError('the KernelWarehouse of a KW layer is not part of the model')


def inflate_warehouse(model: nn.Module, src: Mapping[str, torch.Tensor],
                      out: Dict[str, torch.Tensor]) -> Set[str]:
    """Initialise the KW layers of ``model`` from the static kernels in ``src``.

    Each static kernel ``<layer>.weight`` is cut into the layer's cells
    (:func:`~mmdyn.ops.kernel_warehouse.partition_kernel`) and written into the
    cells its temperature-initialised attention selects; the layer's
    temperature is set to 1. The network then computes exactly the static
    network (the attention starts from the one-hot ``β``); the schedule takes
    τ from there to 0. Writes into ``out`` (cells and temperatures).

    Returns:
        The keys of ``src`` consumed (the static kernels).

    Raises:
        ValueError: A static kernel of the wrong shape, or a warehouse with
            ``cell_num_ratio < 1`` (fewer cells than partitions: a static
            kernel has no exact place in it).
    """
    target, consumed, prefixes = None, set(), {}
    for name, layer in model.named_modules():
        key = f'{name}.weight'
        if not isinstance(layer, KWConv2d) or key not in src:
            continue
        static = src[key]
        if tuple(static.shape) != tuple(layer.kernel_shape):
            raise ValueError(f'cannot load checkpoint key {key!r}: static kernel shape '
                             f'{tuple(static.shape)}, KW layer kernel {layer.kernel_shape}')
        warehouse = layer.kernel_warehouse
        ratio = warehouse.options_of(layer.warehouse_name)['cell_num_ratio']
        if ratio < 1:
            raise ValueError(
                f'cannot initialise KW layer {name} (warehouse {layer.warehouse_name!r}, '
                f'cell_num_ratio={ratio}) from the static kernel {key!r}: with fewer cells '
                f'than kernel partitions a static kernel has no exact place in the '
                f'warehouse; train KW {ratio}x from scratch or load a KW checkpoint')
        target = model.state_dict() if target is None else target
        if id(warehouse) not in prefixes:
            prefixes[id(warehouse)] = warehouse_prefix(model, warehouse)
        cells_key = f'{prefixes[id(warehouse)]}cells.{layer.warehouse_name}'
        cells = out.setdefault(cells_key, target[cells_key].clone())
        parts = partition_kernel(static.to(cells.dtype), layer.partition, layer.cell_shape)
        cells[torch.as_tensor(layer.assigned_cells)] = parts
        out[f'{name}.temperature'] = torch.tensor(1.0, dtype=torch.float64)
        consumed.add(key)
    return consumed
