"""MultiScaleFeatureFusion: parallel convolutions of several kernel sizes, fused.

Source: Srlua, "基于多尺度动态卷积的图像分类" (image classification with
multi-scale dynamic convolution), blog post (``docs/references.md``; our
reading in ``docs/dmc_design.md``), whose ``MultiScaleFeatureFusion`` runs 1x1,
3x3, 5x5 and 7x7 convolutions with "same" padding and the same output width in
parallel and sums them; that is ``fusion='sum'`` here. ``'concat'`` (1x1 conv
over the concatenation) and ``'weighted'`` (softmax-normalised learned branch
weights) are our options:

    y_k = conv_kxk(x; padding = k // 2, stride s)      for k in kernel_sizes
    out = sum_k y_k                                     fusion='sum'
        | conv1x1(concat_k y_k)                         fusion='concat'
        | sum_k softmax(w)_k * y_k                      fusion='weighted'
"""
from typing import Optional, Sequence

import torch
import torch.nn as nn

from mmdyn.utils.validation import IntOrPair, check_choice, check_pair, check_positive_int

from ._base import NotScriptableMixin, check_feature_map, check_input_dtype
from .registry import register_layer

FUSIONS = ('sum', 'concat', 'weighted')


def fuse_scales(outs: Sequence[torch.Tensor], fusion: str,
                fuse_conv: Optional[nn.Module] = None,
                logits: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Fuse the branch outputs ``outs`` (each ``(B, C_out, H', W')``).

    Args:
        outs: One tensor per branch.
        fusion: ``'sum'``, ``'concat'`` (needs ``fuse_conv``, a 1x1 conv
            ``len(outs) * C_out -> C_out``) or ``'weighted'`` (needs
            ``logits`` ``(len(outs),)``; softmax over branches).
    """
    if fusion == 'sum':
        out = outs[0]
        for y in outs[1:]:
            out = out + y
        return out
    if fusion == 'concat':
        return fuse_conv(torch.cat(list(outs), 1))
    if fusion == 'weighted':
        w = torch.softmax(logits, 0).to(outs[0].dtype)
        out = w[0] * outs[0]
        for i in range(1, len(outs)):
            out = out + w[i] * outs[i]
        return out
    raise ValueError(f'unknown fusion {fusion!r}; expected one of {list(FUSIONS)}')


@register_layer('MSFF', family='module')
class MultiScaleFeatureFusion(NotScriptableMixin, nn.Module):
    """Parallel odd-kernel convolutions with a common output grid, fused.

    Shapes: input ``(B, C_in, H, W)`` -> output ``(B, C_out, H', W')`` with
    ``H' = (H - 1) // stride + 1`` (same for W). Parameters: ``branches``
    (one ``nn.Conv2d(C_in, C_out, k, stride, k // 2)`` per kernel size),
    ``fuse`` (1x1 conv, ``'concat'`` only) and ``logits``
    ``(len(kernel_sizes),)`` (``'weighted'`` only, initialised to 0).

    Args:
        in_channels (int): C_in (the keyword mmcv's plugin builder passes).
        out_channels (int | None): C_out; None -> ``in_channels``.
        kernel_sizes (tuple[int]): Odd kernel size of each branch.
            Default: (1, 3, 5, 7).
        fusion (str): ``'sum'`` (the blog; default), ``'concat'`` or
            ``'weighted'``.
        stride (int | tuple[int, int]): Stride of every branch. Default: 1.
        bias (bool): Bias in every conv (branches and ``fuse``). Default: True.
    """

    def __init__(self, in_channels: int, out_channels: Optional[int] = None, *,
                 kernel_sizes: Sequence[int] = (1, 3, 5, 7), fusion: str = 'sum',
                 stride: IntOrPair = 1, bias: bool = True):
        super().__init__()
        self.in_channels = check_positive_int('in_channels', in_channels)
        out_channels = in_channels if out_channels is None else out_channels
        self.out_channels = check_positive_int('out_channels', out_channels)
        if not isinstance(kernel_sizes, (tuple, list)):
            raise TypeError(f'kernel_sizes must be a tuple of odd ints, got {kernel_sizes!r}')
        if not kernel_sizes:
            raise ValueError(f'kernel_sizes must name at least one kernel, got '
                             f'{kernel_sizes!r}')
        for i, k in enumerate(kernel_sizes):
            check_positive_int(f'kernel_sizes[{i}]', k)
            if k % 2 == 0:
                raise ValueError(f'kernel_sizes must be odd ("same" padding k // 2 keeps the '
                                 f'branches aligned), got {k} in {tuple(kernel_sizes)}')
        self.kernel_sizes = tuple(kernel_sizes)
        self.fusion = check_choice('fusion', fusion, FUSIONS)
        self.stride = check_pair('stride', stride, 1)
        if not isinstance(bias, bool):
            raise TypeError(f'bias must be a bool, got {bias!r}')
        self.use_bias = bias
        self.branches = nn.ModuleList(
            nn.Conv2d(in_channels, out_channels, k, self.stride, k // 2, bias=bias)
            for k in self.kernel_sizes)
        n = len(self.kernel_sizes)
        self.fuse = (nn.Conv2d(n * out_channels, out_channels, 1, bias=bias)
                     if fusion == 'concat' else None)
        self.logits = nn.Parameter(torch.zeros(n)) if fusion == 'weighted' else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``nn.Conv2d``'s default init for every conv; branch logits to 0."""
        for conv in self.branches:
            conv.reset_parameters()
        if self.fuse is not None:
            self.fuse.reset_parameters()
        if self.logits is not None:
            with torch.no_grad():
                self.logits.zero_()

    def init_weights(self) -> None:
        """MMEngine-style hook: same as :meth:`reset_parameters`."""
        self.reset_parameters()

    def branch_weights(self) -> Optional[torch.Tensor]:
        """``softmax(logits)`` ``(len(kernel_sizes),)`` for ``'weighted'``, else None."""
        return None if self.logits is None else torch.softmax(self.logits, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_feature_map('MultiScaleFeatureFusion', x, self.in_channels)
        check_input_dtype('MultiScaleFeatureFusion', x, self)
        return fuse_scales([conv(x) for conv in self.branches], self.fusion, self.fuse,
                           self.logits)

    def extra_repr(self) -> str:
        return (f'{self.in_channels}, {self.out_channels}, kernel_sizes={self.kernel_sizes}, '
                f'fusion={self.fusion!r}, stride={self.stride}, bias={self.use_bias}')
