"""KernelWarehouse: kernel cells, their partition and the warehouse that holds them.

Paper: Li, Yao, "KernelWarehouse: Rethinking the Design of Dynamic
Convolution", ICML 2024 (official code OSVAI/KernelWarehouse; facts checked
against it, the numbers in ``docs/kernel_warehouse.md``).

A static kernel ``W`` ``(C_out, C_in/g, kh, kw)`` is cut into ``m`` disjoint
*cells* of one shape ``(c_out, c_in, ch, cw)``: ``m = (C_out/c_out) *
(C_in/g/c_in) * (kh*kw/(ch*cw))`` (with ``spatial_partition`` a cell is
``1 x 1``). A *warehouse* of ``n`` cells ``E`` ``(n, c_out, c_in, ch, cw)`` is
shared by the convolutions of neighbouring layers (the same stage); layer ``l``
computes each of its ``m`` cells as a mixture ``w_i = Σ_j α_ij E_j`` of all
``n`` cells with its own input-dependent attention ``α`` and assembles the
``m`` mixtures back into a kernel. The cell shape of a warehouse is the
greatest common divisor of its members' channel counts times
``cell_inplane_ratio`` / ``cell_outplane_ratio``; its size is ``n =
max(int(cell_num_ratio * Σ_l m_l), 1)``. ``cell_num_ratio`` is the "KW (nx)"
of the paper's tables: 1/4, 1/2 (with cells of half the channels), 1, 2, 4.

This module holds the maths as plain functions and :class:`KernelWarehouse`,
the ``nn.Module`` that owns the cells of one or more named warehouses. The
layers (:class:`~mmdyn.ops.kw_conv2d.KWConv2d`, ``KWLinear``) are in
:mod:`mmdyn.ops.kw_conv2d`.
"""
import math
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from mmdyn.utils.validation import check_positive_number

#: Options of a warehouse (defaults of the official code).
WAREHOUSE_DEFAULTS = dict(cell_num_ratio=1.0, cell_inplane_ratio=1.0, cell_outplane_ratio=1.0,
                          reduction=0.0625, nonlocal_basis_ratio=1.0, spatial_partition=True)

Partition = Tuple[int, int, int]  # (groups_spatial, groups_out, groups_in)


def check_warehouse_options(options: dict, owner: str = 'KernelWarehouse') -> dict:
    """Validate and complete warehouse options (:data:`WAREHOUSE_DEFAULTS`).

    Raises:
        TypeError: A ratio that is not a number; ``spatial_partition`` not a bool.
        ValueError: An unknown option or a ratio that is not a finite number > 0
            (zero, negative, NaN or infinite).
    """
    unknown = sorted(set(options) - set(WAREHOUSE_DEFAULTS))
    if unknown:
        raise ValueError(f'{owner}: unknown option(s) {unknown}; known: '
                         f'{", ".join(WAREHOUSE_DEFAULTS)}')
    out = dict(WAREHOUSE_DEFAULTS, **options)
    for key in ('cell_num_ratio', 'cell_inplane_ratio', 'cell_outplane_ratio', 'reduction',
                'nonlocal_basis_ratio'):
        out[key] = check_positive_number(key, out[key], owner=owner)
    if not isinstance(out['spatial_partition'], bool):
        raise TypeError(f'{owner}: spatial_partition must be a bool, got '
                        f'{out["spatial_partition"]!r}')
    return out


def cell_shape_of(kernel_shapes: Sequence[Sequence[int]], cell_inplane_ratio: float = 1.0,
                  cell_outplane_ratio: float = 1.0, spatial_partition: bool = True,
                  name: str = 'warehouse') -> Tuple[int, int, int, int]:
    """The cell shape ``(c_out, c_in, ch, cw)`` of a warehouse whose members have
    kernels ``(C_out, C_in/g, kh, kw)``: ``max(int(gcd * ratio), 1)`` channels,
    ``1 x 1`` with ``spatial_partition`` (else the members' common kernel size).

    Raises:
        ValueError: No member; members of different kernel sizes without
            ``spatial_partition``; a cell that does not tile a member.
    """
    if not kernel_shapes:
        raise ValueError(f'{name}: a warehouse needs at least one convolution')
    gcd_out = gcd_in = 0
    for shape in kernel_shapes:
        gcd_out, gcd_in = math.gcd(gcd_out, shape[0]), math.gcd(gcd_in, shape[1])
    cell_out = max(int(gcd_out * cell_outplane_ratio), 1)
    cell_in = max(int(gcd_in * cell_inplane_ratio), 1)
    if spatial_partition:
        spatial = (1, 1)
    else:
        sizes = {tuple(s[2:]) for s in kernel_shapes}
        if len(sizes) != 1:
            raise ValueError(f'{name}: spatial_partition=False needs one kernel size for every '
                             f'member, got {sorted(sizes)}')
        spatial = sizes.pop()
    cell = (cell_out, cell_in, *spatial)
    for shape in kernel_shapes:
        if shape[0] % cell_out or shape[1] % cell_in:
            raise ValueError(f'{name}: cells of {cell_out} x {cell_in} channels do not tile a '
                             f'kernel {tuple(shape)} (cell_outplane_ratio='
                             f'{cell_outplane_ratio}, cell_inplane_ratio={cell_inplane_ratio} '
                             f'of the channel gcds {gcd_out}, {gcd_in})')
    return cell


def partition_of(kernel_shape: Sequence[int], cell_shape: Sequence[int]) -> Partition:
    """How a kernel ``(C_out, C_in/g, kh, kw)`` is cut into cells: ``(groups_spatial,
    groups_out, groups_in)``; the kernel has ``m`` = their product cells."""
    spatial = (kernel_shape[2] // cell_shape[2]) * (kernel_shape[3] // cell_shape[3])
    return spatial, kernel_shape[0] // cell_shape[0], kernel_shape[1] // cell_shape[1]


def assemble_kernels(attention: torch.Tensor, cells: torch.Tensor, partition: Partition,
                     kernel_size: Tuple[int, int]) -> torch.Tensor:
    """Per-sample kernels from the cell mixtures.

    Args:
        attention: ``(B, m, n)`` weights of the ``n`` cells for each of the
            ``m`` cells of the kernel (mixture ``i`` is spatial position
            ``i // (g_out*g_in)``, output block ``i // g_in % g_out``, input
            block ``i % g_in``, the official order).
        cells: ``(n, c_out, c_in, ch, cw)``.
        partition: ``(groups_spatial, groups_out, groups_in)``.
        kernel_size: ``(kh, kw)``.

    Returns:
        ``(B, C_out, C_in/g, kh, kw)``. Batch-agnostic (export-safe).
    """
    g_s, g_o, g_i = partition
    num_cells, c_out, c_in, ch, cw = cells.shape
    mixed = attention.reshape(-1, num_cells).matmul(cells.reshape(num_cells, -1).to(attention.dtype))
    mixed = mixed.reshape(-1, g_s, g_o, g_i, c_out, c_in, ch, cw)
    mixed = mixed.permute(0, 2, 4, 3, 5, 1, 6, 7)  # (B, g_o, c_out, g_i, c_in, g_s, ch, cw)
    return mixed.reshape(-1, g_o * c_out, g_i * c_in, *kernel_size)


def partition_kernel(weight: torch.Tensor, partition: Partition,
                     cell_shape: Sequence[int]) -> torch.Tensor:
    """The inverse of :func:`assemble_kernels` for one kernel: ``(C_out, C_in/g,
    kh, kw)`` -> its ``m`` cells ``(m, c_out, c_in, ch, cw)`` in mixture order."""
    g_s, g_o, g_i = partition
    c_out, c_in, ch, cw = cell_shape
    cells = weight.reshape(g_o, c_out, g_i, c_in, g_s, ch, cw)
    return cells.permute(4, 0, 2, 1, 3, 5, 6).reshape(g_s * g_o * g_i, c_out, c_in, ch, cw)


def _claims_cell(i: int, cell_num_ratio: float) -> bool:
    """Below ``cell_num_ratio`` 1, whether mixture ``i`` gets a cell of its own:
    one in ``r = int(1/cell_num_ratio)``, when ``i % r == (i // r) % r`` (official)."""
    per_cell = int(1.0 / cell_num_ratio)
    return i % per_cell == (i // per_cell) % per_cell


def temperature_bias(num_mixtures: int, num_cells: int, start: int,
                     cell_num_ratio: float) -> Tuple[torch.Tensor, List[int]]:
    """The temperature-initialised attention ``β`` of one layer and its own cells.

    With ``cell_num_ratio >= 1`` mixture ``i`` is assigned cell ``start + i *
    int(cell_num_ratio)``; below 1, one mixture in ``1/cell_num_ratio`` gets
    the next cell (mixture ``i`` when ``i % r == (i // r) % r``, ``r =
    int(1/cell_num_ratio)``) and the others the zero cell (column ``n``). At
    temperature 1 the attention is exactly ``β``: each assigned mixture is its
    cell, the others are zero (the official rule).

    Returns:
        tuple: ``β`` ``(m, n + 1)`` (one 1 per row), and the assigned cell
        index of each mixture (``-1`` for the zero cell).
    """
    bias = torch.zeros(num_mixtures, num_cells + 1)
    assigned = []
    if cell_num_ratio >= 1:
        step = int(cell_num_ratio)
        for i in range(num_mixtures):
            assigned.append(start + i * step)
    else:
        for i in range(num_mixtures):
            if _claims_cell(i, cell_num_ratio):
                assigned.append(start)
                start += 1
            else:
                assigned.append(-1)
    for i, cell in enumerate(assigned):
        bias[i, cell if cell >= 0 else num_cells] = 1.0
    return bias, assigned


def cells_used(num_mixtures: int, cell_num_ratio: float) -> int:
    """How many cells of the warehouse a layer of ``num_mixtures`` mixtures
    initialises (its share, see :func:`temperature_bias`)."""
    if cell_num_ratio >= 1:
        return num_mixtures * int(cell_num_ratio)
    return sum(1 for i in range(num_mixtures) if _claims_cell(i, cell_num_ratio))


def init_cells_(cells: torch.Tensor) -> None:
    """The official initialisation of one layer's own cells ``(k, c_out, c_in, ch,
    cw)``: kaiming-normal (fan-out, ReLU) over them as one ``(k*c_out, c_in, ch,
    cw)`` tensor. No-op for ``k = 0``."""
    if cells.size(0):
        with torch.no_grad():
            nn.init.kaiming_normal_(cells.view(-1, *cells.shape[2:]), mode='fan_out',
                                    nonlinearity='relu')


def normalise_attention(logits: torch.Tensor, temperature: float,
                        bias: torch.Tensor) -> torch.Tensor:
    """KernelWarehouse's attention function.

    ``α = (1 - τ) z / (Σ_j |z_j| + 1e-3) + τ β`` over the ``n + 1`` logits of
    each mixture (the last one is the zero cell, dropped from the output).

    Args:
        logits: ``(B, m, n + 1)``.
        temperature: τ in ``[0, 1]``.
        bias: ``β`` ``(m, n + 1)``.

    Returns:
        ``(B, m, n)``.
    """
    z = logits / (logits.abs().sum(-1, keepdim=True) + 1e-3)
    if temperature != 0.0:
        z = (1.0 - temperature) * z + temperature * bias.to(z.dtype)
    return z[..., :-1]


class KernelWarehouse(nn.Module):
    """The cells of one or more named warehouses, shared by KernelWarehouse layers.

    Layers reserve a place (:meth:`reserve`, done by ``KWConv2d(...,
    warehouse=wh, warehouse_name=name)``); :meth:`build` then creates each
    warehouse's cells ``cells[name]`` ``(n, c_out, c_in, ch, cw)`` from its
    members' kernel shapes, gives every member its attention and initialises
    each member's own cells (kaiming-normal, fan-out, as the official code).
    A layer holds a reference to the warehouse, not a copy: the cells are
    parameters of this module only (one entry per warehouse in a state dict).

    Args:
        cell_num_ratio (float): ``n / Σ m_l``. Default: 1.
        cell_inplane_ratio (float): Cell input channels / gcd of the members'
            input channels. Default: 1.
        cell_outplane_ratio (float): Same for the output channels. Default: 1.
        reduction (float): Hidden width of each attention, ``max(int(C_in *
            reduction), 16)``. Default: 1/16.
        nonlocal_basis_ratio (float): Below 1, the logits of the cells of other
            layers come from ``max(int(n_nonlocal * ratio), 16)`` basis logits
            through a linear map (fewer attention parameters; the official
            ResNet-50 KW 1/2x uses 1/16). Default: 1 (off).
        spatial_partition (bool): Cells of ``1 x 1`` spatial size. Default: True.
        overrides (dict[str, dict] | None): Options per warehouse name.
    """

    def __init__(self, *, overrides: Optional[Dict[str, dict]] = None, **options):
        super().__init__()
        self.options = check_warehouse_options(options)
        self.overrides = {name: check_warehouse_options(dict(self.options, **opts),
                                                        owner=f'KernelWarehouse[{name!r}]')
                          for name, opts in (overrides or {}).items()}
        self.cells = nn.ParameterDict()
        self._members: 'OrderedDict[str, List[nn.Module]]' = OrderedDict()
        self.built = False

    def options_of(self, name: str) -> dict:
        """The options of warehouse ``name`` (overrides applied)."""
        return self.overrides.get(name, self.options)

    def reserve(self, layer: nn.Module, name: str) -> None:
        """Add ``layer`` (kernel shape ``layer.kernel_shape``) to warehouse ``name``."""
        if self.built:
            raise RuntimeError('KernelWarehouse: cannot reserve a layer after build()')
        if not isinstance(name, str) or not name or '.' in name:
            raise ValueError(f'KernelWarehouse: a warehouse name must be a non-empty str '
                             f'without ".", got {name!r}')
        self._members.setdefault(name, []).append(layer)

    def members(self, name: str) -> List[nn.Module]:
        """The layers that draw from warehouse ``name``, in allocation order."""
        return list(self._members[name])

    def names(self) -> List[str]:
        """The warehouse names, in order of first reservation."""
        return list(self._members)

    def build(self, order: Optional[Sequence[nn.Module]] = None) -> None:
        """Create the cells and bind every member (see the class docstring).

        Args:
            order: The allocation order of the layers (which cells each one
                initialises); default: the order of reservation.

        Raises:
            ValueError: Unknown override names, a cell shape that does not tile
                a member (:func:`cell_shape_of`).
        """
        unknown = sorted(set(self.overrides) - set(self._members))
        if unknown:
            raise ValueError(f'KernelWarehouse: overrides for unknown warehouse(s) {unknown}; '
                             f'the warehouses are {self.names()}')
        rank = {id(m): i for i, m in enumerate(order or [])}
        for name, members in self._members.items():
            members.sort(key=lambda m: rank.get(id(m), len(rank)))
            opts = self.options_of(name)
            shapes = [m.kernel_shape for m in members]
            cell = cell_shape_of(shapes, opts['cell_inplane_ratio'], opts['cell_outplane_ratio'],
                                 opts['spatial_partition'], name=f'warehouse {name!r}')
            mixtures = [math.prod(partition_of(shape, cell)) for shape in shapes]
            ratio = opts['cell_num_ratio']
            num_cells = max(int(sum(mixtures) * ratio), 1)
            claimed = sum(cells_used(m, ratio) for m in mixtures)
            if claimed != num_cells:
                raise ValueError(
                    f'warehouse {name!r}: the temperature initialisation gives its layers '
                    f'{claimed} cells of their own but it holds {num_cells} '
                    f'(cell_num_ratio={ratio}, cell_inplane_ratio='
                    f'{opts["cell_inplane_ratio"]}, cell_outplane_ratio='
                    f'{opts["cell_outplane_ratio"]}); below 1 use smaller cells, '
                    f'cell_num_ratio >= cell_inplane_ratio * cell_outplane_ratio (the '
                    f'official 1/2x: 0.5, 0.5, 0.5; 1/4x: 0.25, 0.5, 0.5), above 1 an integer')
            self.cells[name] = nn.Parameter(torch.empty(num_cells, *cell))
            start = 0
            for member in members:
                start = member.bind(self, name, start)
        self.built = True
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise every member's own cells (kaiming-normal, fan-out over the
        member's cells as one ``(cells*c_out, c_in, ch, cw)`` tensor, the
        official initialisation)."""
        for name, members in self._members.items():
            for member in members:
                init_cells_(self.cells[name][slice(*member.cell_range)])

    def extra_repr(self) -> str:
        return ', '.join(f'{n}: {tuple(self.cells[n].shape) if n in self.cells else "unbuilt"} '
                         f'x{len(m)} layers' for n, m in self._members.items())
