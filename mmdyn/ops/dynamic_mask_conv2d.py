"""DMC: dynamic mask convolution, a multi-branch dilated conv with dynamic masks.

Paper: Jiang, You, Zhang, "Dynamic mask convolution for image classification
networks", CAAI Transactions on Intelligent Systems 21(2):423-434, 2026
(doi:10.11992/tis.202503019). Only the abstract is available: a
*multi-branch mask convolution fusion module* runs branches at several scales,
a dynamic mask computed from the input's context selects and strengthens key
features, and the branches are fused. The concrete design below is ours (see
``docs/dmc_design.md``); every open choice is an option:

    y_i = conv_kxk(x; W_i, dilation = d * r_i, padding = d * r_i * (k - 1) / 2)
    m_i = sigmoid(conv_mxm(y_i) -> 1 map)           mask='spatial'  (B, 1, H', W')
        | sigmoid(FC(GAP(y_i)))                     mask='channel'  (B, C_out, 1, 1)
        | 1                                         mask='none'
    out = conv_1x1(concat_i(y_i * m_i))             fusion='conv1x1'
        | sum_i y_i * m_i                           fusion='sum'

``r_i`` are the ``branch_dilations`` and ``d`` the layer's ``dilation``; every
branch has the output size of ``nn.Conv2d(C_in, C_out, k, stride,
d * (k - 1) / 2, d, groups)``, so the layer is a drop-in for that conv.
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from mmdyn.utils.validation import check_choice, check_positive_int

from ._base import DynamicConvBase, at_least_float32, init_bias_, init_kernel_bank_
from .batched_conv import empty_batch_output, is_empty_batch
from .registry import register_layer

MASKS = ('spatial', 'channel', 'none')
FUSIONS = ('conv1x1', 'sum')


def branch_outputs(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                   branch_dilations: Sequence[Tuple[int, int]], stride, groups: int
                   ) -> torch.Tensor:
    """Run every branch and concatenate the results along channels.

    Args:
        x: Input ``(B, C_in, H, W)``.
        weight: Branch kernels ``(NB, C_out, C_in/g, kh, kw)``.
        bias: Branch biases ``(NB, C_out)`` or None.
        branch_dilations: Dilation ``(dh, dw)`` of each branch (already
            multiplied by the layer's dilation); padding is ``d * (k - 1) / 2``.
        stride: Stride shared by all branches.
        groups: Groups shared by all branches.

    Returns:
        ``(B, NB * C_out, H', W')``: branch ``i`` in channels
        ``[i * C_out, (i + 1) * C_out)``.
    """
    kh, kw = weight.shape[-2:]
    outs = []
    for i, (dh, dw) in enumerate(branch_dilations):
        padding = (dh * (kh - 1) // 2, dw * (kw - 1) // 2)
        outs.append(F.conv2d(x, weight[i], None if bias is None else bias[i], stride, padding,
                             (dh, dw), groups))
    return torch.cat(outs, dim=1)


def branch_masks(y: torch.Tensor, num_branches: int, mask: str,
                 mask_weight: Optional[torch.Tensor], mask_bias: Optional[torch.Tensor]
                 ) -> Optional[torch.Tensor]:
    """The dynamic mask of every branch, computed from that branch's output only.

    Args:
        y: Concatenated branch outputs ``(B, NB * C_out, H', W')``.
        num_branches: NB.
        mask: ``'spatial'``, ``'channel'`` or ``'none'``.
        mask_weight: ``'spatial'``: ``(NB, C_out, m, m)`` (one ``C_out -> 1``
            conv per branch); ``'channel'``: ``(NB, C_out, C_out)`` (one FC per
            branch, ``out = W @ in``).
        mask_bias: ``(NB,)`` (spatial) or ``(NB, C_out)`` (channel).

    Returns:
        ``(B, NB, 1, H', W')`` (spatial), ``(B, NB, C_out, 1, 1)`` (channel),
        or None (``'none'``); values in (0, 1), in ``y``'s dtype (computed in
        at least float32).
    """
    if mask == 'none':
        return None
    batch, channels = y.size(0), int(y.size(1)) // num_branches  # a constant in a graph
    if mask == 'spatial':
        m = mask_weight.size(-1)
        # groups=NB: output map i only sees the channels of branch i.
        z = F.conv2d(y, mask_weight, mask_bias, padding=m // 2, groups=num_branches)
        return torch.sigmoid(at_least_float32(z)).to(y.dtype).unsqueeze(2)
    if mask == 'channel':
        gap = y.mean((2, 3)).view(batch, num_branches, channels)
        z = torch.einsum('nbc,bdc->nbd', gap, mask_weight) + mask_bias
        return torch.sigmoid(at_least_float32(z)).to(y.dtype).view(
            batch, num_branches, channels, 1, 1)
    raise ValueError(f'unknown mask {mask!r}; expected one of {list(MASKS)}')


def fuse_branches(y: torch.Tensor, num_branches: int, fusion: str,
                  fusion_weight: Optional[torch.Tensor] = None,
                  fusion_bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Fuse concatenated (masked) branch outputs into ``C_out`` channels.

    Args:
        y: ``(B, NB * C_out, H', W')``.
        num_branches: NB.
        fusion: ``'conv1x1'`` (1x1 conv ``NB * C_out -> C_out`` with
            ``fusion_weight`` ``(C_out, NB * C_out, 1, 1)`` and optional
            ``fusion_bias`` ``(C_out,)``) or ``'sum'`` (sum over branches).
    """
    if fusion == 'conv1x1':
        return F.conv2d(y, fusion_weight, fusion_bias)
    if fusion == 'sum':
        # explicit sizes, constants but the batch (no -1): an exported graph runs at batch 0
        channels, height, width = (int(size) for size in y.shape[1:])
        return y.reshape(y.size(0), num_branches, channels // num_branches, height,
                         width).sum(1)
    raise ValueError(f'unknown fusion {fusion!r}; expected one of {list(FUSIONS)}')


def dynamic_mask_conv2d(x, weight, bias, branch_dilations, stride=1, groups=1, *,
                        mask='spatial', mask_weight=None, mask_bias=None, fusion='conv1x1',
                        fusion_weight=None, fusion_bias=None) -> torch.Tensor:
    """Functional DMC: branches -> per-branch dynamic masks -> fusion.

    Arguments as :func:`branch_outputs`, :func:`branch_masks` and
    :func:`fuse_branches`. Returns ``(B, C_out, H', W')``.
    """
    num_branches = weight.size(0)
    y = branch_outputs(x, weight, bias, branch_dilations, stride, groups)
    m = branch_masks(y, num_branches, mask, mask_weight, mask_bias)
    if m is not None:
        # explicit sizes, constants but the batch (no -1): an exported graph runs at batch 0
        batch = y.size(0)
        channels, height, width = (int(size) for size in y.shape[1:])
        y = (y.reshape(batch, num_branches, channels // num_branches, height, width) * m
             ).reshape(batch, channels, height, width)
    return fuse_branches(y, num_branches, fusion, fusion_weight, fusion_bias)


@register_layer('DMC', family='module')
class DynamicMaskConv2d(DynamicConvBase):
    """Dynamic mask convolution (multi-branch mask convolution fusion), a
    drop-in ``nn.Conv2d``.

    Shapes: input ``(B, C_in, H, W)`` -> output ``(B, C_out, H', W')`` with
    ``H', W'`` those of ``nn.Conv2d(C_in, C_out, k, stride, d * (k - 1) / 2,
    d, groups)``. Parameters: ``weight`` ``(NB, C_out, C_in/g, kh, kw)``,
    ``bias`` ``(NB, C_out)`` or None, ``mask_weight`` / ``mask_bias`` (see
    :func:`branch_masks`; None for ``mask='none'``), ``fusion_weight``
    ``(C_out, NB * C_out, 1, 1)`` / ``fusion_bias`` ``(C_out,)`` (conv1x1).

    Args:
        in_channels, out_channels, kernel_size, stride, dilation, groups: As
            ``nn.Conv2d``. ``kernel_size`` must be odd (branches are centred).
        padding (int | tuple | str | None): None (default) -> ``d * (k - 1) / 2``;
            an explicit value must equal that (the branches must align).
        bias (bool): A bias in every branch conv and in the fusion 1x1 conv.
            Default: False.
        branch_dilations (tuple[int]): Dilation rate ``r_i`` of each branch,
            multiplied by ``dilation``. Default: (1, 2, 3).
        mask (str): ``'spatial'`` (default), ``'channel'`` or ``'none'``.
        fusion (str): ``'conv1x1'`` (default) or ``'sum'``.
        mask_kernel_size (int): Odd kernel of the spatial mask conv. Default: 3.
    """

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=None,
                 dilation=1, groups=1, bias=False, *, branch_dilations=(1, 2, 3),
                 mask: str = 'spatial', fusion: str = 'conv1x1', mask_kernel_size: int = 3):
        name = type(self).__name__
        auto_padding = padding is None  # set below, once kernel_size/dilation are valid
        super().__init__(in_channels, out_channels, kernel_size, stride,
                         0 if auto_padding else padding, dilation, groups, bias)
        if any(k % 2 == 0 for k in self.kernel_size):
            raise ValueError(f'{name}: kernel_size must be odd (the dilated branches are '
                             f'centred on the same pixel), got {self.kernel_size}')
        same = tuple(d * (k - 1) // 2 for d, k in zip(self.dilation, self.kernel_size))
        if auto_padding:
            self.padding = same
        elif self.padding != same:
            raise ValueError(
                f'{name}: padding must be dilation*(kernel_size-1)//2 = {same} (or None), '
                f'got {self.padding}: every branch uses "same"-style padding for its own '
                f'dilation so that the branch outputs align for fusion')
        if not isinstance(branch_dilations, (tuple, list)):
            raise TypeError(f'branch_dilations must be a tuple of ints, got '
                            f'{branch_dilations!r}')
        if not branch_dilations:
            raise ValueError(f'branch_dilations must name at least one branch, got '
                             f'{branch_dilations!r}')
        self.branch_dilations = tuple(check_positive_int(f'branch_dilations[{i}]', r)
                                      for i, r in enumerate(branch_dilations))
        self.mask = check_choice('mask', mask, MASKS)
        self.fusion = check_choice('fusion', fusion, FUSIONS)
        self.mask_kernel_size = check_positive_int('mask_kernel_size', mask_kernel_size)
        if mask_kernel_size % 2 == 0:
            raise ValueError(f'mask_kernel_size must be odd, got {mask_kernel_size}')
        nb, cout = len(self.branch_dilations), out_channels
        self.create_kernel_bank(nb, bias)
        shapes = {'spatial': ((nb, cout, mask_kernel_size, mask_kernel_size), (nb, )),
                  'channel': ((nb, cout, cout), (nb, cout))}
        if self.mask in shapes:
            self.mask_weight = torch.nn.Parameter(torch.empty(shapes[self.mask][0]))
            self.mask_bias = torch.nn.Parameter(torch.empty(shapes[self.mask][1]))
        else:
            self.mask_weight = self.mask_bias = None
        if self.fusion == 'conv1x1':
            self.fusion_weight = torch.nn.Parameter(torch.empty(cout, nb * cout, 1, 1))
            self.fusion_bias = torch.nn.Parameter(torch.empty(cout)) if bias else None
        else:
            self.fusion_weight = self.fusion_bias = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every conv/FC initialised like ``nn.Conv2d`` / ``nn.Linear`` of its shape."""
        self.reset_kernel_bank()
        if self.mask_weight is not None:
            # one (1, C_out, m, m) conv or one (C_out, C_out) FC per branch
            bank = (self.mask_weight.unsqueeze(1) if self.mask == 'spatial'
                    else self.mask_weight)
            init_kernel_bank_(bank, 'conv2d')
            with torch.no_grad():
                for i in range(self.mask_weight.size(0)):
                    init_bias_(self.mask_bias[i], self.mask_weight[i].numel()
                               if self.mask == 'spatial' else self.out_channels)
        if self.fusion_weight is not None:
            init_kernel_bank_(self.fusion_weight.unsqueeze(0), 'conv2d')
            init_bias_(self.fusion_bias, self.fusion_weight[0].numel())

    @property
    def effective_dilations(self) -> List[Tuple[int, int]]:
        """Dilation ``(dh, dw)`` of each branch: ``dilation * r_i``."""
        return [(self.dilation[0] * r, self.dilation[1] * r) for r in self.branch_dilations]

    def masks(self, x: torch.Tensor) -> List[torch.Tensor]:
        """The dynamic mask of each branch for input ``x`` (for visualisation).

        Returns:
            One tensor per branch: ``(B, 1, H', W')`` (spatial) or
            ``(B, C_out, 1, 1)`` (channel); an empty list for ``mask='none'``.
        """
        self.check_input(x)
        y = branch_outputs(x, self.weight, self.bias, self.effective_dilations, self.stride,
                           self.groups)
        m = branch_masks(y, len(self.branch_dilations), self.mask, self.mask_weight,
                         self.mask_bias)
        return [] if m is None else list(m.unbind(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        if is_empty_batch(x):
            return empty_batch_output(self, x)
        return dynamic_mask_conv2d(x, self.weight, self.bias, self.effective_dilations,
                                   self.stride, self.groups, mask=self.mask,
                                   mask_weight=self.mask_weight, mask_bias=self.mask_bias,
                                   fusion=self.fusion, fusion_weight=self.fusion_weight,
                                   fusion_bias=self.fusion_bias)

    def extra_repr(self) -> str:
        return (super().extra_repr() + f', branch_dilations={self.branch_dilations}, '
                f'mask={self.mask!r}, fusion={self.fusion!r}, '
                f'mask_kernel_size={self.mask_kernel_size}')
