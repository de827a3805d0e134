"""Capture what a dynamic mask convolution (DMC) layer attends to.

Paper: Jiang, You, Zhang, "Dynamic mask convolution for image classification
networks", CAAI Transactions on Intelligent Systems 21(2):423-434, 2026
(doi:10.11992/tis.202503019); the concrete layers are mmdyn's
(:class:`~mmdyn.ops.DynamicMaskConv2d`, :class:`~mmdyn.ops.AdaptiveEnhancement`,
see ``docs/dmc_design.md``).

:class:`DMCMaskRecorder` is a context manager that puts a forward *pre*-hook on
one :class:`~mmdyn.ops.DynamicMaskConv2d` layer of a model and on the
:class:`~mmdyn.ops.AdaptiveEnhancement` module of the same block (in the mmdyn
ResNets ``<layer>.<i>.residual_plugins.0``, next to ``<layer>.<i>.conv2``).
Each hook captures its module's input and, under ``torch.no_grad()``, calls the
module's own visualisation method on it: ``layer.masks(x)`` (the per-branch
dynamic masks, spatial ``(B, 1, H', W')`` or channel ``(B, C_out, 1, 1)``, none
for ``mask='none'``) and ``enhancement.attention_maps(y)`` (channel ``(B, C, 1,
1)`` and pixel ``(B, 1, H, W)`` attention). Nothing in :mod:`mmdyn.ops` is
modified and the model's output is unchanged.
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn

from mmdyn.ops.adaptive_enhancement import AdaptiveEnhancement
from mmdyn.ops.dynamic_mask_conv2d import DynamicMaskConv2d

__all__ = ['DMCRecord', 'DMCMaskRecorder', 'find_dmc_layers', 'find_dmc_enhancement',
           'dmc_record']


@dataclass
class DMCRecord:
    """One forward call of one DMC layer (and of its block's enhancement).

    Attributes:
        name: Module name of the DMC layer in the model.
        input: Layer input ``(B, C_in, H, W)`` (detached).
        mask_kind: The layer's ``mask``: ``'spatial'``, ``'channel'`` or ``'none'``.
        masks: One mask per branch, values in (0, 1): ``(B, 1, H', W')``
            (spatial) or ``(B, C_out, 1, 1)`` (channel); empty for ``'none'``.
        branch_dilations: Effective dilation ``(dh, dw)`` of each branch
            (``dilation * r_i``), in branch order.
        enhancement_name: Module name of the block's AdaptiveEnhancement, or
            ``None`` when the block has none (or it was not called).
        channel_attention: The enhancement's channel attention ``(B, C, 1, 1)``,
            or ``None`` (no enhancement, or its channel attention disabled).
        pixel_attention: The enhancement's pixel attention ``(B, 1, H, W)``, or
            ``None``.
        enhancement_mode: The enhancement's ``mode`` (``'sequential'`` /
            ``'parallel'``) or ``None``.
    """
    name: str
    input: torch.Tensor
    mask_kind: str
    masks: List[torch.Tensor]
    branch_dilations: Tuple[Tuple[int, int], ...]
    enhancement_name: Optional[str] = None
    channel_attention: Optional[torch.Tensor] = None
    pixel_attention: Optional[torch.Tensor] = None
    enhancement_mode: Optional[str] = None

    @property
    def has_masks(self) -> bool:
        """Whether the layer has dynamic masks (False for ``mask='none'``)."""
        return bool(self.masks)

    @property
    def has_enhancement(self) -> bool:
        """Whether enhancement maps were recorded."""
        return self.channel_attention is not None or self.pixel_attention is not None


def find_dmc_layers(model: nn.Module) -> Dict[str, DynamicMaskConv2d]:
    """All :class:`~mmdyn.ops.DynamicMaskConv2d` layers of ``model`` by module
    name, in model order (empty dict: none)."""
    return {n: m for n, m in model.named_modules() if isinstance(m, DynamicMaskConv2d)}


def find_dmc_enhancement(model: nn.Module, layer: str
                         ) -> Optional[Tuple[str, AdaptiveEnhancement]]:
    """The AdaptiveEnhancement of the block that holds DMC layer ``layer``.

    The block is the layer's parent module (``backbone.layer1.0`` for
    ``backbone.layer1.0.conv2``); its first AdaptiveEnhancement descendant is
    returned (in the mmdyn ResNets ``backbone.layer1.0.residual_plugins.0``).
    A layer directly under ``model`` has no block, hence no enhancement.

    Args:
        model: The model.
        layer: Module name of a DMC layer of ``model``.

    Returns:
        ``(name, module)`` or ``None``.

    Raises:
        ValueError: ``layer`` is not a DMC layer of ``model``.
    """
    layers = find_dmc_layers(model)
    if layer not in layers:
        raise ValueError(f'{layer!r} is not a DynamicMaskConv2d layer of the model; '
                         f'available: {list(layers)}')
    if '.' not in layer:
        return None
    block = layer.rsplit('.', 1)[0]
    parent = model.get_submodule(block)
    for sub, module in parent.named_modules():
        if isinstance(module, AdaptiveEnhancement):
            return f'{block}.{sub}', module
    return None


def dmc_record(name: str, layer: DynamicMaskConv2d, x: torch.Tensor,
               enhancement: Optional[AdaptiveEnhancement] = None,
               enhancement_input: Optional[torch.Tensor] = None,
               enhancement_name: Optional[str] = None) -> DMCRecord:
    """Compute a :class:`DMCRecord` from captured inputs (under ``no_grad``).

    Args:
        name: Module name of ``layer``.
        layer: The DMC layer.
        x: Its input ``(B, C_in, H, W)``.
        enhancement: The block's AdaptiveEnhancement, or ``None``.
        enhancement_input: Its input ``(B, C, H, W)`` (required with ``enhancement``).
        enhancement_name: Module name of ``enhancement``.

    Returns:
        The record; masks from ``layer.masks(x)``, maps from
        ``enhancement.attention_maps(enhancement_input)``.

    Raises:
        TypeError: ``layer`` is not a DynamicMaskConv2d, or ``enhancement`` not
            an AdaptiveEnhancement.
        ValueError: ``enhancement`` given without ``enhancement_input``.
    """
    if not isinstance(layer, DynamicMaskConv2d):
        raise TypeError(f'layer must be a DynamicMaskConv2d, got {type(layer).__name__}')
    x = x.detach()
    with torch.no_grad():
        masks = [m.detach() for m in layer.masks(x)]
        channel = pixel = None
        if enhancement is not None:
            if not isinstance(enhancement, AdaptiveEnhancement):
                raise TypeError(f'enhancement must be an AdaptiveEnhancement, got '
                                f'{type(enhancement).__name__}')
            if enhancement_input is None:
                raise ValueError(f'enhancement {enhancement_name!r} given without its input')
            channel, pixel = enhancement.attention_maps(enhancement_input.detach())
    return DMCRecord(
        name=name, input=x, mask_kind=layer.mask, masks=masks,
        branch_dilations=tuple(tuple(d) for d in layer.effective_dilations),
        enhancement_name=enhancement_name if enhancement is not None else None,
        channel_attention=None if channel is None else channel.detach(),
        pixel_attention=None if pixel is None else pixel.detach(),
        enhancement_mode=enhancement.mode if enhancement is not None else None)


class DMCMaskRecorder:
    """Context manager recording one DMC layer's masks and its block's
    enhancement maps during a forward.

    Example::

        with DMCMaskRecorder(model, 'backbone.layer1.0.conv2') as rec:
            model.extract_feat(x)
        record = rec.records['backbone.layer1.0.conv2'][0]
        record.masks            # one (B, 1, H', W') map per branch (mask='spatial')
        record.pixel_attention  # (B, 1, H, W) or None

    Forward pre-hooks capture the inputs of the layer and of the enhancement;
    ``layer.masks`` / ``attention_maps`` are evaluated on them under
    ``torch.no_grad()``. The i-th enhancement call completes the i-th record.

    Args:
        model: A model with DynamicMaskConv2d layers.
        layer: Name of the layer to record; ``None`` (default) the first one.
        enhancement (bool): Also record the block's AdaptiveEnhancement (found
            by :func:`find_dmc_enhancement`). Default True.

    Attributes:
        layer_name, layer, enhancement_name, enhancement: What is hooked
            (the enhancement ones ``None`` when there is none).
        records (dict[str, list[DMCRecord]]): ``{layer_name: [one record per
            call of the layer]}``, the shape of
            :attr:`mmdyn.analysis.A2D2CAttentionRecorder.records`.

    Raises:
        ValueError: The model has no DMC layer, or ``layer`` is not one (the
            message lists the available names).
    """

    def __init__(self, model: nn.Module, layer: Optional[str] = None,
                 enhancement: bool = True):
        available = find_dmc_layers(model)
        if not available:
            raise ValueError(f'{type(model).__name__} has no DynamicMaskConv2d layer to '
                             f'record')
        name = next(iter(available)) if layer is None else layer
        if name not in available:
            raise ValueError(f'{name!r} is not a DynamicMaskConv2d layer of the model; '
                             f'available: {list(available)}')
        if not isinstance(enhancement, bool):
            raise TypeError(f'enhancement must be a bool, got {enhancement!r}')
        self.layer_name = name
        self.layer = available[name]
        found = find_dmc_enhancement(model, name) if enhancement else None
        self.enhancement_name, self.enhancement = found if found else (None, None)
        self.records: Dict[str, List[DMCRecord]] = {name: []}
        self._enhanced = 0
        self._handles = []

    def _layer_hook(self, module, args):
        self.records[self.layer_name].append(dmc_record(self.layer_name, module, args[0]))

    def _enhancement_hook(self, module, args):
        records = self.records[self.layer_name]
        if self._enhanced >= len(records):  # called before the layer: not its block's
            return
        rec = records[self._enhanced]
        self._enhanced += 1
        with torch.no_grad():
            channel, pixel = module.attention_maps(args[0].detach())
        rec.enhancement_name = self.enhancement_name
        rec.enhancement_mode = module.mode
        rec.channel_attention = None if channel is None else channel.detach()
        rec.pixel_attention = None if pixel is None else pixel.detach()

    def __enter__(self) -> 'DMCMaskRecorder':
        self._handles.append(self.layer.register_forward_pre_hook(self._layer_hook))
        if self.enhancement is not None:
            self._handles.append(
                self.enhancement.register_forward_pre_hook(self._enhancement_hook))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
