"""ODConv: Omni-Dimensional Dynamic Convolution.

Paper: Li, Zhou and Yao, "Omni-Dimensional Dynamic Convolution", ICLR 2022;
structure as in the official code (OSVAI/ODConv ``modules/odconv.py``).
One attention branch, GAP -> 1x1 FC to ``max(int(C_in*r), 16)`` channels (no
bias) -> BN -> ReLU, feeds four heads:

* channel attention ``sigmoid(z/T)`` (C_in), multiplies the input;
* filter attention ``sigmoid(z/T)`` (C_out), multiplies the output
  (skipped for depthwise convs);
* spatial attention ``sigmoid(z/T)`` (kh*kw), multiplies every kernel
  (skipped for 1x1 kernels);
* kernel attention ``softmax(z/T)`` (K) (skipped for K = 1).

The per-sample kernel ``α_s ⊙ Σ_k α_k W_k`` (equal to the paper's
``Σ_k α_k (α_s ⊙ W_k)``, as α_s is shared by the kernels) is run by the shared
:func:`~mmdyn.ops.batched_conv.mixed_kernel_conv2d`.

Batch size 1: the official BatchNorm in the attention branch raises in
training for a batch of one pooled vector. Here it is a
:class:`~mmdyn.ops._base.SafeBatchNorm1d`, identical for batches > 1, which
normalises a batch of one with its running statistics instead of failing.
"""
from typing import Dict, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmdyn.utils.validation import (check_choice, check_fraction, check_positive_int,
                                    check_temperature)

from ._base import (DynamicConvBase, SafeBatchNorm1d, TemperatureMixin, at_least_float32,
                    batch_norm_madds)
from .batched_conv import (STRATEGIES, empty_batch_output, is_empty_batch,
                           mixed_kernel_conv2d)
from .fused_attention import odconv_mixture_conv2d, use_fused
from .registry import register_layer

Attn = Union[torch.Tensor, float]


@register_layer('ODConv')
class ODConv2d(TemperatureMixin, DynamicConvBase):
    """Omni-dimensional dynamic convolution (drop-in ``nn.Conv2d``).

    Shapes: input ``(B, C_in, H, W)`` -> output ``(B, C_out, H', W')``.
    Parameters: ``weight`` ``(K, C_out, C_in/g, kh, kw)``; attention ``fc``
    (``C_in -> hidden``), ``bn``, and the heads ``channel_fc``, ``filter_fc``,
    ``spatial_fc``, ``kernel_fc`` (those that apply). Official ODConv has no
    bias; with ``bias=True`` a static bias is added after the filter attention.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation,
        groups, bias: As ``nn.Conv2d`` (``bias`` defaults to False).
        kernel_num (int): K. Default: 4.
        reduction (float): r, hidden width ``max(int(C_in*r), min_channels)``.
            Default: 1/16.
        min_channels (int): Lower bound of the hidden width. Default: 16.
        temperature (float): T of every head (official default 1.0; anneal
            30 -> 1 with ``TemperatureAnnealHook`` as the ODConv recipe does).
        strategy (str): Per-sample convolution strategy. Default: ``'auto'``.
            While traced or exported the layer runs the batch-agnostic path
            whatever the strategy (:func:`~mmdyn.ops.batched_conv.is_exporting`).
    """

    has_kernel_bank = True
    kernel_init = 'kaiming_fan_out'
    strategies = STRATEGIES  # no 'maps': the spatial attention scales the kernels

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=False, *, kernel_num: int = 4,
                 reduction: float = 0.0625, min_channels: int = 16,
                 temperature: float = 1.0, strategy: str = 'auto'):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias)
        self.kernel_num = check_positive_int('kernel_num', kernel_num)
        reduction = check_fraction('reduction', reduction)
        hidden = max(int(in_channels * reduction), check_positive_int('min_channels',
                                                                      min_channels))
        self.temperature = check_temperature(temperature)
        self.strategy = check_choice('strategy', strategy, self.strategies)
        kh, kw = self.kernel_size
        self.fc = nn.Linear(in_channels, hidden, bias=False)
        self.bn = SafeBatchNorm1d(hidden)
        self.channel_fc = nn.Linear(hidden, in_channels)
        self.filter_fc = None if self.depthwise else nn.Linear(hidden, out_channels)
        self.spatial_fc = None if kh * kw == 1 else nn.Linear(hidden, kh * kw)
        self.kernel_fc = None if kernel_num == 1 else nn.Linear(hidden, kernel_num)
        self.create_kernel_bank(kernel_num, bias_bank=False)
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None  # static
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Official init: kernels and FCs kaiming-normal (fan_out), zero FC
        biases, BN weight 1 / bias 0."""
        self.reset_kernel_bank()
        for fc in (self.fc, self.channel_fc, self.filter_fc, self.spatial_fc,
                   self.kernel_fc):
            if fc is not None:
                nn.init.kaiming_normal_(fc.weight, mode='fan_out', nonlinearity='relu')
                if fc.bias is not None:
                    nn.init.zeros_(fc.bias)
        self.bn.reset_parameters()

    def attention(self, x: torch.Tensor) -> Tuple[Attn, Attn, Attn, Attn]:
        """The four attentions for ``x``: channel ``(B, C_in)``, filter
        ``(B, C_out)``, spatial ``(B, kh*kw)``, kernel ``(B, K)``; a skipped
        head returns the float 1.0."""
        t = self.temperature
        h = F.relu(self.bn(self.fc(x.mean((2, 3)))))
        channel = torch.sigmoid(self.channel_fc(h) / t)
        filt = 1.0 if self.filter_fc is None else torch.sigmoid(self.filter_fc(h) / t)
        spatial = 1.0 if self.spatial_fc is None else torch.sigmoid(self.spatial_fc(h) / t)
        kernel = 1.0 if self.kernel_fc is None else torch.softmax(
            at_least_float32(self.kernel_fc(h)) / t, dim=1)
        return channel, filt, spatial, kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        if is_empty_batch(x):
            return empty_batch_output(self, x)
        batch = x.size(0)
        channel, filt, spatial, kernel_att = self.attention(x)
        if not isinstance(kernel_att, torch.Tensor):                 # K == 1
            kernel_att = x.new_ones(batch, 1, dtype=torch.float32)
        if self.strategy == 'auto' and use_fused(  # one pass: fused_attention.py
                x, self.weight, self.groups, self.output_size(x.size(2), x.size(3))):
            out = odconv_mixture_conv2d(x, self.weight, kernel_att, channel, filt, spatial,
                                        self.stride, self.padding, self.dilation)
            return out if self.bias is None else out + self.bias.to(out.dtype).view(1, -1, 1, 1)
        # explicit sizes, no -1: an exported Reshape cannot infer a -1 beside a batch of 0
        x = x * channel.to(x.dtype).view(batch, self.in_channels, 1, 1)
        out = mixed_kernel_conv2d(x, kernel_att, self.weight, None,
                                  spatial if isinstance(spatial, torch.Tensor) else None,
                                  self.stride, self.padding, self.dilation, self.groups,
                                  self.strategy)
        if isinstance(filt, torch.Tensor):
            out = out * filt.to(out.dtype).view(batch, self.out_channels, 1, 1)
        if self.bias is not None:
            out = out + self.bias.to(out.dtype).view(1, -1, 1, 1)
        return out

    def madds(self, input_hw: Tuple[int, int], batch: int = 1,
              training: bool = False) -> Dict[str, int]:
        """Closed-form MAdds of one forward, by part (``P = H'*W'``).

        * ``attention``: GAP ``B*C_in*H*W``, ``fc`` ``B*C_in*hidden``, its
          BatchNorm, the heads ``B*hidden*Σ outputs``, /T ``B*Σ outputs`` and the
          kernel softmax ``B*K``;
        * ``channel_filter``: the channel attention on the input ``B*C_in*H*W``,
          the filter attention on the output ``B*C_out*P`` and the static bias
          ``B*C_out*P``, where they apply;
        * the mixture with the spatial attention
          (:meth:`~mmdyn.ops._base.DynamicConvBase.mixture_madds`).
        """
        h, w = input_hw
        out_hw = self.output_size(h, w)
        b, cin, positions = batch, self.in_channels, out_hw[0] * out_hw[1]
        hidden = self.fc.out_features
        heads = sum(m.out_features for m in (self.channel_fc, self.filter_fc, self.spatial_fc,
                                             self.kernel_fc) if m is not None)
        softmax = 0 if self.kernel_fc is None else b * self.kernel_num
        parts = {'attention': (b * cin * h * w + b * cin * hidden
                               + batch_norm_madds(b * hidden, training and b > 1)
                               + b * hidden * heads
                               + b * heads + softmax),
                 'channel_filter': b * cin * h * w}
        strategy = self.madds_strategy(b, out_hw, training, maps_ok=False)
        parts.update(self.mixture_madds(b, out_hw, strategy, spatial=self.spatial_fc is not None))
        for applies in (self.filter_fc is not None, self.bias is not None):
            if applies:
                parts['channel_filter'] += b * self.out_channels * positions
        return parts
