"""Adaptive enhancement: channel- and pixel-level attention that reweights features.

Paper: Jiang, You, Zhang, "Dynamic mask convolution for image classification
networks", CAAI Transactions on Intelligent Systems 21(2):423-434, 2026
(doi:10.11992/tis.202503019). The abstract says the *adaptive enhancement
module* is introduced in residual learning and adjusts feature weights by
combining pixel-level and channel-level attention; the concrete layers below
are our choice (see ``docs/dmc_design.md``):

    a_c(x) = sigmoid(FC(ReLU(FC(GAP(x)))))               (B, C, 1, 1)  C -> h -> C
    a_p(x) = sigmoid(conv1x1(ReLU(conv1x1(x))))          (B, 1, H, W)  C -> h_p -> 1
    mode='sequential':  x' = x * a_c(x);  out = x' * a_p(x')
    mode='parallel':    out = x * a_c(x) * a_p(x)

The mmdyn backbones apply it to the residual branch before the residual sum.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmdyn.utils.validation import check_choice, check_positive_int

from ._base import NotScriptableMixin, at_least_float32, check_feature_map, check_input_dtype
from .registry import register_layer

MODES = ('sequential', 'parallel')


def _gate(z: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``sigmoid(z)`` computed in at least float32, returned in ``dtype``."""
    return torch.sigmoid(at_least_float32(z)).to(dtype)


@register_layer('AdaptiveEnhancement', family='module')
class AdaptiveEnhancement(NotScriptableMixin, nn.Module):
    """Pixel- and channel-level attention (shape-preserving reweighting).

    Shapes: input ``(B, C, H, W)`` -> output ``(B, C, H, W)``.
    Parameters: ``channel_fc1`` ``C -> h`` and ``channel_fc2`` ``h -> C``
    (``nn.Linear``) with ``h = max(C // reduction, min_hidden)``;
    ``pixel_conv1`` ``C -> h_p`` and ``pixel_conv2`` ``h_p -> 1`` (1x1
    ``nn.Conv2d``) with ``h_p = max(C // pixel_reduction, min_hidden)``.
    A disabled attention has no parameters (its attributes are None).

    Args:
        in_channels (int): C (the keyword mmcv's plugin builder passes).
        reduction (int): Channel-attention squeeze ratio. Default: 16.
        min_hidden (int): Lower bound of both hidden widths. Default: 4.
        channel_attention (bool): Enable the SE-style channel attention.
            Default: True.
        pixel_attention (bool): Enable the per-pixel attention. Default: True.
        pixel_reduction (int): Pixel-attention squeeze ratio. Default: 8.
        mode (str): ``'sequential'`` (pixel attention computed on the
            channel-scaled features; default) or ``'parallel'`` (both from x).

    Raises:
        ValueError: Both attentions disabled, unknown ``mode``, or a
            non-positive width/ratio.
    """

    def __init__(self, in_channels: int, *, reduction: int = 16, min_hidden: int = 4,
                 channel_attention: bool = True, pixel_attention: bool = True,
                 pixel_reduction: int = 8, mode: str = 'sequential'):
        super().__init__()
        self.in_channels = check_positive_int('in_channels', in_channels)
        self.reduction = check_positive_int('reduction', reduction)
        self.min_hidden = check_positive_int('min_hidden', min_hidden)
        self.pixel_reduction = check_positive_int('pixel_reduction', pixel_reduction)
        self.mode = check_choice('mode', mode, MODES)
        for name, flag in (('channel_attention', channel_attention),
                           ('pixel_attention', pixel_attention)):
            if not isinstance(flag, bool):
                raise TypeError(f'{name} must be a bool, got {flag!r}')
        if not (channel_attention or pixel_attention):
            raise ValueError('AdaptiveEnhancement needs at least one attention: '
                             'channel_attention and pixel_attention are both False')
        self.channel_attention = channel_attention
        self.pixel_attention = pixel_attention
        self.channel_fc1 = self.channel_fc2 = self.pixel_conv1 = self.pixel_conv2 = None
        if channel_attention:
            hidden = max(in_channels // reduction, min_hidden)
            self.channel_fc1 = nn.Linear(in_channels, hidden)
            self.channel_fc2 = nn.Linear(hidden, in_channels)
        if pixel_attention:
            hidden = max(in_channels // pixel_reduction, min_hidden)
            self.pixel_conv1 = nn.Conv2d(in_channels, hidden, 1)
            self.pixel_conv2 = nn.Conv2d(hidden, 1, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default ``nn.Linear`` / ``nn.Conv2d`` initialisation."""
        for m in (self.channel_fc1, self.channel_fc2, self.pixel_conv1, self.pixel_conv2):
            if m is not None:
                m.reset_parameters()

    def init_weights(self) -> None:
        """MMEngine-style hook: same as :meth:`reset_parameters`."""
        self.reset_parameters()

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a clear error for an input this module cannot reweight."""
        check_feature_map('AdaptiveEnhancement', x, self.in_channels)
        check_input_dtype('AdaptiveEnhancement', x, self)

    def channel_map(self, x: torch.Tensor) -> torch.Tensor:
        """Channel attention ``(B, C, 1, 1)`` in (0, 1) (requires it enabled)."""
        z = self.channel_fc2(F.relu(self.channel_fc1(x.mean((2, 3)))))
        return _gate(z, x.dtype)[:, :, None, None]

    def pixel_map(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel attention ``(B, 1, H, W)`` in (0, 1) (requires it enabled)."""
        return _gate(self.pixel_conv2(F.relu(self.pixel_conv1(x))), x.dtype)

    def _enhance(self, x: torch.Tensor):
        """``(output, channel map or None, pixel map or None)``."""
        self.check_input(x)
        channel = pixel = None
        out = x
        if self.channel_attention:
            channel = self.channel_map(x)
            out = x * channel
        if self.pixel_attention:
            pixel = self.pixel_map(out if self.mode == 'sequential' else x)
            out = out * pixel
        return out, channel, pixel

    def attention_maps(self, x: torch.Tensor
                       ) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        """The maps that :meth:`forward` multiplies by (for visualisation).

        Returns:
            ``(channel, pixel)``: channel ``(B, C, 1, 1)`` or None, pixel
            ``(B, 1, H, W)`` or None. In ``'sequential'`` mode the pixel map
            is the one computed on ``x * channel``.
        """
        _, channel, pixel = self._enhance(x)
        return channel, pixel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._enhance(x)[0]

    def extra_repr(self) -> str:
        return (f'{self.in_channels}, reduction={self.reduction}, min_hidden={self.min_hidden}, '
                f'channel_attention={self.channel_attention}, '
                f'pixel_attention={self.pixel_attention}, '
                f'pixel_reduction={self.pixel_reduction}, mode={self.mode!r}')
