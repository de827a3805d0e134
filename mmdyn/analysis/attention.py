"""Capture what A2D2C / A2D2C+ layers compute: sampled points and attention π.

:class:`A2D2CAttentionRecorder` is a context manager that puts forward hooks
on the A2D2C layers of a model. For each call it records the layer input and
output, the output positions the layer averaged (Eq. 3) and the attention
``π = softmax(p̄ / T)`` (Eq. 5) with its logits ``p̄``.

Nothing in :mod:`mmdyn.ops` is modified. The positions are recovered exactly:
a pre-hook saves the torch RNG state before the layer draws its points, and the
forward hook replays ``layer.draw_positions(x)`` from that state (restoring
the RNG afterwards, so the rest of the run is unchanged). The attention is
the layer's own: ``layer.attention_logits`` under those positions
(:func:`~mmdyn.ops.a2d2c_conv2d.a2d2c_logits`, the function the fast path
runs) and :func:`~mmdyn.ops.a2d2c_conv2d.a2d2c_attention`. The reference path,
the ``maps`` strategy and the fused CPU path compute the same quantity another
way (equal up to round-off).
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from mmdyn.ops.a2d2c_conv2d import A2D2CConv2d, a2d2c_attention

__all__ = ['A2D2CRecord', 'A2D2CAttentionRecorder', 'find_a2d2c_layers', 'layer_attention',
           'positions_to_yx']


@dataclass
class A2D2CRecord:
    """One forward call of one A2D2C layer.

    Attributes:
        name: Module name in the model.
        input: Layer input ``(B, C_in, H, W)`` (detached).
        output: Layer output ``(B, C_out, H', W')`` (detached).
        positions: ``(B, M)`` flat output indices averaged for the attention,
            or ``None`` when every position was used.
        out_hw: ``(H', W')``.
        logits: ``p̄`` ``(B, K, C_out)``.
        attention: ``π`` ``(B, K, C_out)`` (sums to 1 over K).
        temperature: T used.
        sampling: The sampling mode in force (train or eval mode of the layer).
    """
    name: str
    input: torch.Tensor
    output: torch.Tensor
    positions: Optional[torch.Tensor]
    out_hw: Tuple[int, int]
    logits: torch.Tensor
    attention: torch.Tensor
    temperature: float
    sampling: str


def find_a2d2c_layers(model: nn.Module) -> Dict[str, A2D2CConv2d]:
    """All A2D2C / A2D2C+ layers of ``model`` by module name, in model order."""
    return {n: m for n, m in model.named_modules() if isinstance(m, A2D2CConv2d)}


def layer_attention(layer: A2D2CConv2d, x: torch.Tensor,
                    positions: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Logits ``p̄`` and attention ``π`` of ``layer`` for input ``x`` and positions.

    Args:
        layer: An A2D2C or A2D2C+ layer.
        x: ``(B, C_in, H, W)``.
        positions: ``(B, M)`` flat output indices or ``None`` (all positions).

    Returns:
        ``(logits, attention)``, both ``(B, K, C_out)``, without autograd.
    """
    with torch.no_grad():
        logits = layer.attention_logits(x, positions)
        return logits, a2d2c_attention(logits, layer.temperature)


def positions_to_yx(positions: torch.Tensor, out_hw: Tuple[int, int]) -> torch.Tensor:
    """Flat indices ``(..., M)`` into ``(..., M, 2)`` ``(row, col)`` coordinates."""
    rows = torch.div(positions, out_hw[1], rounding_mode='floor')
    return torch.stack([rows, positions - rows * out_hw[1]], dim=-1)


class A2D2CAttentionRecorder:
    """Context manager recording the A2D2C layers' points and attention.

    Example::

        with A2D2CAttentionRecorder(model, layers=['backbone.layer1.0.conv1']) as rec:
            model(x)
        record = rec.records['backbone.layer1.0.conv1'][0]
        record.attention  # (B, K, C_out)

    Args:
        model: Any model containing A2D2C/A2D2C+ layers.
        layers: Names of the layers to hook; ``None`` hooks all of them.
        keep_tensors: Store input/output tensors (set False to save memory;
            they are then empty tensors).

    Raises:
        ValueError: the model has no A2D2C layer, or a name in ``layers`` is
            not one (the message lists the available names).
    """

    def __init__(self, model: nn.Module, layers: Optional[Sequence[str]] = None,
                 keep_tensors: bool = True):
        available = find_a2d2c_layers(model)
        if not available:
            raise ValueError(f'{type(model).__name__} has no A2D2CConv2d/A2D2CPlusConv2d '
                             f'layer to record')
        if layers is None:
            layers = list(available)
        missing = [n for n in layers if n not in available]
        if missing:
            raise ValueError(f'not A2D2C layers of the model: {missing}; available: '
                             f'{list(available)}')
        self.layers = {n: available[n] for n in layers}
        self.keep_tensors = keep_tensors
        self.records: Dict[str, List[A2D2CRecord]] = {n: [] for n in self.layers}
        self._handles = []
        self._rng: Dict[str, tuple] = {}

    def _pre_hook(self, name):
        def hook(module, args):
            state = torch.get_rng_state()
            cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
            self._rng[name] = (state, cuda)
        return hook

    def _hook(self, name):
        def hook(module, args, output):
            x = args[0].detach()
            after = torch.get_rng_state()
            after_cuda = (torch.cuda.get_rng_state_all()
                          if torch.cuda.is_initialized() else None)
            state, cuda = self._rng.pop(name)
            torch.set_rng_state(state)
            if cuda is not None:
                torch.cuda.set_rng_state_all(cuda)
            try:
                positions = module.draw_positions(x)
            finally:
                torch.set_rng_state(after)
                if after_cuda is not None:
                    torch.cuda.set_rng_state_all(after_cuda)
            logits, attn = layer_attention(module, x, positions)
            empty = x.new_empty(0)
            self.records[name].append(A2D2CRecord(
                name=name, input=x if self.keep_tensors else empty,
                output=output.detach() if self.keep_tensors else empty,
                positions=positions, out_hw=module.output_size(x.size(2), x.size(3)),
                logits=logits, attention=attn, temperature=module.temperature,
                sampling=module.sampling if module.training else module.eval_sampling))
        return hook

    def __enter__(self) -> 'A2D2CAttentionRecorder':
        for name, layer in self.layers.items():
            self._handles.append(layer.register_forward_pre_hook(self._pre_hook(name)))
            self._handles.append(layer.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._rng.clear()
