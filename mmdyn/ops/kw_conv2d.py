"""KernelWarehouse convolution (``KW``) and its linear layer.

Paper: Li, Yao, "KernelWarehouse: Rethinking the Design of Dynamic
Convolution", ICML 2024 (official code OSVAI/KernelWarehouse). The cells, the
partition and the warehouse are in :mod:`mmdyn.ops.kernel_warehouse`.

Attention of a layer with ``m`` mixtures over a warehouse of ``n`` cells:
``z = FC2(ReLU(BN(FC1(GAP(x)))))`` ``(B, m, n + 1)`` (one extra "zero cell"
per mixture), ``α = (1 - τ) z / (Σ|z| + 1e-3) + τ β`` where ``β`` is the
temperature-initialised one-hot choice of the layer's own cells
(:func:`~mmdyn.ops.kernel_warehouse.temperature_bias`); the schedule takes τ
linearly from 1 to 0 (``TemperatureAnnealHook`` with
``layer_schedules=dict(KW=...)``). Each sample's kernel is assembled from its
``m`` cell mixtures and applied with the shared batched routine.
"""
import math
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmdyn.utils.validation import check_choice, check_positive_int

from ._base import (DynamicConvBase, SafeBatchNorm1d, TemperatureMixin, at_least_float32,
                    batch_norm_madds, init_bias_)
from .batched_conv import (STRATEGIES, batched_dynamic_conv2d, empty_batch_output,
                           is_channels_last, is_empty_batch, is_exporting, unfold_dynamic_conv2d)
from .kernel_warehouse import (KernelWarehouse, assemble_kernels, cells_used, init_cells_,
                               normalise_attention, partition_of, temperature_bias)
from .registry import register_layer


class KWAttention(nn.Module):
    """The attention branch of one KernelWarehouse layer (official structure).

    ``FC1`` ``(C_in -> hidden)`` without bias, BatchNorm, ReLU, ``FC2`` ``(hidden
    -> m*(n+1))`` with bias. With ``num_basis`` (non-local basis), ``FC2`` gives
    ``m*(n_local + num_basis + 1)`` logits without bias, ``FC3`` maps the basis
    to the ``n - n_local`` cells of the other layers, plus a learnt bias.
    """

    def __init__(self, in_channels: int, hidden: int, num_mixtures: int, num_cells: int,
                 num_local: int = 0, start: int = 0, num_basis: Optional[int] = None):
        super().__init__()
        self.num_mixtures, self.num_cells = num_mixtures, num_cells
        self.num_local, self.start, self.num_basis = num_local, start, num_basis
        self.fc1 = nn.Linear(in_channels, hidden, bias=False)
        self.norm = SafeBatchNorm1d(hidden)
        if num_basis is None:
            self.fc2 = nn.Linear(hidden, num_mixtures * (num_cells + 1))
            self.fc3 = self.basis_bias = None
        else:
            self.fc2 = nn.Linear(hidden, num_mixtures * (num_local + num_basis + 1), bias=False)
            self.fc3 = nn.Linear(num_basis, num_cells - num_local, bias=False)
            self.basis_bias = nn.Parameter(torch.zeros(num_mixtures * (num_cells + 1)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-normal (fan-out, ReLU) linear weights, zero biases, BN (1, 0)."""
        for fc in (self.fc1, self.fc2, self.fc3):
            if fc is not None:
                nn.init.kaiming_normal_(fc.weight, mode='fan_out', nonlinearity='relu')
                if fc.bias is not None:
                    nn.init.zeros_(fc.bias)
        self.norm.reset_parameters()
        if self.basis_bias is not None:
            nn.init.zeros_(self.basis_bias)

    @property
    def out_logits(self) -> int:
        """Width of ``FC2``."""
        return self.fc2.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, H, W)`` -> logits ``(B, m, n + 1)``."""
        z = self.fc2(F.relu(self.norm(self.fc1(x.mean((2, 3))))))
        if self.fc3 is None:
            return z.reshape(-1, self.num_mixtures, self.num_cells + 1)
        z = z.reshape(-1, self.num_local + self.num_basis + 1)
        local, basis, zero = (z[:, :self.num_local], z[:, self.num_local:-1], z[:, -1:])
        other = self.fc3(basis)
        z = torch.cat([other[:, :self.start], local, other[:, self.start:], zero], dim=1)
        z = z.reshape(-1, self.num_mixtures * (self.num_cells + 1)) + self.basis_bias
        return z.reshape(-1, self.num_mixtures, self.num_cells + 1)


@register_layer('KW')
class KWConv2d(TemperatureMixin, DynamicConvBase):
    """KernelWarehouse convolution (drop-in ``nn.Conv2d``).

    Shapes: input ``(B, C_in, H, W)`` -> output ``(B, C_out, H', W')``.
    Parameters: the attention (:class:`KWAttention`), ``bias`` ``(C_out,)`` if
    ``bias``; the cells live in a :class:`~mmdyn.ops.kernel_warehouse.KernelWarehouse`.

    Two modes:

    * plain per-layer (``warehouse=None``): the layer owns a warehouse
      (child ``warehouse``) of its own cells, with the options below;
    * shared (``warehouse=wh``): the layer draws from ``wh.cells[warehouse_name]``
      with the options of ``wh``; it works once ``wh.build()`` has run (the
      backbones do this: ``dyn_conv=dict(type='KW', ...)``).

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation,
        groups, bias: As ``nn.Conv2d`` (``bias`` defaults to False); grouped
            and depthwise convolutions are partitioned per group.
        cell_num_ratio (float): Cells / partitions, the paper's "KW (nx)":
            1/4, 1/2, 1, 2, 4... Default: 1 (own warehouse only).
        cell_inplane_ratio, cell_outplane_ratio (float): Cell channels / the
            kernel's channels. Default: 1 (own warehouse only).
        reduction (float): Attention hidden width ``max(int(C_in*r), 16)``.
            Default: 1/16 (own warehouse only).
        nonlocal_basis_ratio (float): See ``KernelWarehouse``. Default: 1.
        spatial_partition (bool): ``1 x 1`` cells. Default: True.
        temperature (float): τ in ``[0, 1]`` (1: each cell is its own
            temperature-initialised cell; 0: attention only). Default: 0.
        strategy (str): Per-sample convolution strategy (``'auto'``,
            ``'grouped'``, ``'loop'``, ``'bmm'``). Default: ``'auto'``.
        warehouse (KernelWarehouse | None): A shared warehouse. Default: None.
        warehouse_name (str): The warehouse of ``warehouse`` to draw from.
            Default: ``'default'``.
    """

    strategies = STRATEGIES
    kernel_init = 'kaiming_fan_out'
    min_hidden = 16

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=False, *, cell_num_ratio: Optional[float] = None,
                 cell_inplane_ratio: Optional[float] = None,
                 cell_outplane_ratio: Optional[float] = None, reduction: Optional[float] = None,
                 nonlocal_basis_ratio: Optional[float] = None,
                 spatial_partition: Optional[bool] = None, temperature: float = 0.0,
                 strategy: str = 'auto', warehouse: Optional[KernelWarehouse] = None,
                 warehouse_name: str = 'default'):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias)
        options = {k: v for k, v in dict(
            cell_num_ratio=cell_num_ratio, cell_inplane_ratio=cell_inplane_ratio,
            cell_outplane_ratio=cell_outplane_ratio, reduction=reduction,
            nonlocal_basis_ratio=nonlocal_basis_ratio,
            spatial_partition=spatial_partition).items() if v is not None}
        self.strategy = check_choice('strategy', strategy, self.strategies)
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.set_temperature(temperature)
        self.kernel_shape = (out_channels, in_channels // groups, *self.kernel_size)
        self.warehouse_name = warehouse_name
        self.cell_range = (0, 0)
        if warehouse is None:
            self.warehouse = KernelWarehouse(**options)
            self.warehouse.reserve(self, warehouse_name)
            self.warehouse.build()
        else:
            if options:
                raise ValueError(f'KWConv2d: {sorted(options)} are options of the shared '
                                 'warehouse; set them on the KernelWarehouse, not the layer')
            if not isinstance(warehouse, KernelWarehouse):
                raise TypeError(f'KWConv2d: warehouse must be a KernelWarehouse, got '
                                f'{type(warehouse).__name__}')
            object.__setattr__(self, '_shared', warehouse)  # a reference, not a child
            warehouse.reserve(self, warehouse_name)
        init_bias_(self.bias, math.prod(self.kernel_shape[1:]))

    @staticmethod
    def check_temperature_value(value) -> float:
        """τ must be a number in ``[0, 1]``; like the other layers' temperatures,
        anything ``float()`` accepts (a 0-d tensor, a numpy scalar).

        Raises:
            TypeError: Not a number.
            ValueError: Outside ``[0, 1]``, NaN or infinite (as the other
                layers' invalid temperatures, see ``TemperatureMixin``).
        """
        try:
            number = float(value)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f'KWConv2d: temperature must be a number, got {value!r}') from None
        if not 0.0 <= number <= 1.0:  # also refuses NaN
            hint = (' (a TemperatureAnnealHook needs its own schedule for KW: '
                    'layer_schedules=dict(KW=dict(start_temperature=1.0, '
                    'end_temperature=0.0)))') if 1.0 < number < math.inf else ''
            raise ValueError(f'KWConv2d: temperature must be in [0, 1], got {value!r}{hint}')
        return number

    # ---------------------------------------------------------------- warehouse
    @property
    def kernel_warehouse(self) -> KernelWarehouse:
        """The warehouse this layer draws from (its own or the shared one)."""
        shared = self.__dict__.get('_shared')
        return shared if shared is not None else self.warehouse

    @property
    def cells(self) -> torch.Tensor:
        """The cells ``(n, c_out, c_in, ch, cw)`` this layer mixes."""
        wh = self.kernel_warehouse
        if not wh.built:
            raise RuntimeError(f'KWConv2d: warehouse {self.warehouse_name!r} is not built yet '
                               '(call KernelWarehouse.build() after creating its layers)')
        return wh.cells[self.warehouse_name]

    def bind(self, warehouse: KernelWarehouse, name: str, start: int) -> int:
        """Called by ``warehouse.build()``: create the attention for the
        warehouse's ``n`` cells, claim this layer's cells from ``start``;
        returns the next free cell."""
        opts = warehouse.options_of(name)
        cells = warehouse.cells[name]
        self.cell_shape = tuple(cells.shape[1:])
        self.partition = partition_of(self.kernel_shape, self.cell_shape)
        num_mixtures = math.prod(self.partition)
        num_cells = cells.size(0)
        ratio = opts['cell_num_ratio']
        num_local, num_basis = int(ratio * num_mixtures), None
        if opts['nonlocal_basis_ratio'] < 1.0:
            num_basis = max(int((num_cells - num_local) * opts['nonlocal_basis_ratio']), 16)
        hidden = max(int(self.in_channels * opts['reduction']), self.min_hidden)
        self.attention_net = KWAttention(self.in_channels, hidden, num_mixtures, num_cells,
                                         num_local, start, num_basis)
        bias, self.assigned_cells = temperature_bias(num_mixtures, num_cells, start, ratio)
        self.register_buffer('temperature_bias', bias, persistent=False)
        end = start + cells_used(num_mixtures, ratio)
        self.cell_range = (start, end)
        return end

    def reset_parameters(self) -> None:
        """The attention, the bias and this layer's own cells (kaiming-normal,
        fan-out, official); the other cells of a shared warehouse are left alone."""
        if hasattr(self, 'attention_net'):
            self.attention_net.reset_parameters()
        init_bias_(self.bias, math.prod(self.kernel_shape[1:]))
        if self.kernel_warehouse.built:
            init_cells_(self.cells[slice(*self.cell_range)])

    # ------------------------------------------------------------------ forward
    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """Cell weights ``(B, m, n)`` for input ``x``."""
        self.cells  # noqa: B018 (raises a clear error before the warehouse is built)
        logits = at_least_float32(self.attention_net(x))
        return normalise_attention(logits, self.temperature, self.temperature_bias)

    def kernels(self, x: torch.Tensor) -> torch.Tensor:
        """The per-sample kernels ``(B, C_out, C_in/g, kh, kw)``."""
        attn = self.attention(x)
        return assemble_kernels(attn, self.cells, self.partition, self.kernel_size).to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        if is_empty_batch(x):
            return empty_batch_output(self, x) + self.cells.sum().to(x.dtype) * 0
        kernels = self.kernels(x)
        bias = None if self.bias is None else self.bias.to(x.dtype).expand(x.size(0), -1)
        if is_exporting():
            out = unfold_dynamic_conv2d(x, kernels, bias, self.stride, self.padding,
                                        self.dilation, self.groups)
            return out.contiguous(memory_format=torch.channels_last) \
                if is_channels_last(x) else out
        return batched_dynamic_conv2d(x, kernels, bias, self.stride, self.padding,
                                      self.dilation, self.groups, self.strategy)

    def madds(self, input_hw: Tuple[int, int], batch: int = 1,
              training: bool = False) -> Dict[str, int]:
        """Closed-form MAdds of one forward, by part (``m`` mixtures, ``n``
        cells, ``L = m(n+1)`` logits), in the conventions of
        :mod:`mmdyn.analysis.complexity` (the traced counter checks them).

        * ``attention``: GAP ``B*C_in*H*W``, FC1 ``B*C_in*hidden``, its
          BatchNorm (eval-mode cost at ``B = 1``, where ``SafeBatchNorm1d``
          uses its running statistics), FC2 ``B*hidden*|FC2|`` (non-local: +
          FC3 ``B*m*basis*(n - n_local)`` and the bias ``B*L``), the
          normalisation ``2*B*L + B*m`` (``Σ|z|`` and the division, 1 per
          logit each, ``+ 1e-3`` per mixture; ``abs`` is free) and, for τ > 0,
          the blend ``2*B*L + L``;
        * ``assembly``: ``B*m*n*|cell|``;
        * ``conv``: one static convolution per sample (the bias is not
          counted, as for ``nn.Conv2d``).
        """
        h, w = input_hw
        out_hw = self.output_size(h, w)
        att = self.attention_net
        b, m, n = batch, att.num_mixtures, att.num_cells
        logits = m * (n + 1)
        hidden = att.fc1.out_features
        attention = (b * self.in_channels * h * w + b * self.in_channels * hidden
                     + batch_norm_madds(b * hidden, training and b > 1)
                     + b * hidden * att.out_logits + 2 * b * logits + b * m)
        if att.fc3 is not None:
            attention += b * m * att.num_basis * att.fc3.out_features + b * logits
        if self.temperature != 0.0:
            attention += 2 * b * logits + logits
        return dict(attention=attention, assembly=b * m * n * math.prod(self.cell_shape),
                    conv=self.static_conv_madds(b, out_hw))


class KWLinear(nn.Module):
    """KernelWarehouse linear layer (drop-in ``nn.Linear`` for ``(B, C_in)`` inputs):
    a ``1 x 1`` :class:`KWConv2d` on ``(B, C_in, 1, 1)``, as the official
    ``KWLinear`` (used for the classifier of MobileNetV2 KW 1/2x).

    Args:
        in_features, out_features (int): As ``nn.Linear``.
        bias (bool): Default: True.
        **kwargs: :class:`KWConv2d`'s keyword options (warehouse ratios,
            ``temperature``, ``warehouse``/``warehouse_name``).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, **kwargs):
        super().__init__()
        self.in_features = check_positive_int('in_features', in_features)
        self.out_features = check_positive_int('out_features', out_features)
        self.conv = KWConv2d(in_features, out_features, 1, bias=bias, **kwargs)

    def reset_parameters(self) -> None:
        self.conv.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.size(1) != self.in_features:
            raise ValueError(f'KWLinear expects a (B, {self.in_features}) input, got '
                             f'{tuple(x.shape)}')
        return self.conv(x[:, :, None, None]).reshape(x.size(0), self.out_features)

    def extra_repr(self) -> str:
        return f'in_features={self.in_features}, out_features={self.out_features}'
