"""DCD: Dynamic Convolution Decomposition.

Paper: Li et al., "Revisiting Dynamic Convolution via Matrix Decomposition",
ICLR 2021 (official code liyunsheng13/dcd). The dynamic kernel is a static
kernel plus a low-rank dynamic residual in a latent space of L channels:

    y = λ(x) ⊙ (W0 * x) + P( BN(Φ(x) · BN(Q x)) + BN(Q x) )

* ``W0``: the static ``kh x kw`` convolution (grouped/depthwise allowed);
* ``Q``: 1x1 conv ``C_in -> L`` read at the kernel's centre tap with the
  layer's stride (for a "same"-padded kernel this is the official strided
  1x1 conv; for other paddings it keeps the output grid aligned);
* ``Φ(x)``: a per-sample ``L x L`` matrix, ``λ(x)``: per-channel scale in
  [0, 2], both from the squeeze branch ``h = FC(GAP(x))``,
  ``h = h ⊙ hsig2(FC_gate(h))`` (the official ``SEModule_small``), ``Φ =
  FC_phi(h)``, ``λ = hsig2(FC_scale(h))``, where ``hsig2(z) = relu6(z + 3) / 3``
  (the official ``Hsigmoid``, values in [0, 2], 1 at 0; never halved);
* ``P``: 1x1 conv ``L -> C_out``.

``L`` defaults to ``int(sqrt(C_in))`` (the official bottleneck rule; the
official 3x3 basic-block layers use ``int(sqrt(4*C_in))``, pass
``latent_dim``). There are no K kernels, so DCD takes no ``kernel_num`` and no
temperature.

Given the same weights, the output equals the official ``conv_dy``
(``models/imagenet/resnet_dcd.py``) for every "same"-padded kernel (1x1 with
padding 0, 3x3 with padding 1, ...). Where mmdyn still differs, on purpose:

* the squeeze width is at least 4 (``max(C_in, L^2) // reduction`` alone is 0
  for ``C_in < 16``; the official ``conv_dy`` has no lower bound, its
  ``conv_basic_dy`` and ``DYModule`` use 4);
* its BatchNorms tolerate batch size 1 in training
  (:class:`~mmdyn.ops._base.SafeBatchNorm1d`), where the official ones raise;
* ``bias=True`` (not in the official module) adds a bias to ``W0 * x``
  before the ``λ`` scale; ``groups`` (not official either) group ``W0`` only;
  other paddings read ``Q`` at the kernel's centre tap;
* initialisation: ``W0`` like ``nn.Conv2d`` (the official ResNet re-draws
  every conv as normal(0, sqrt(2 / fan_out))); the layers are PyTorch's defaults;
* not implemented: the official basic-block variant ``conv_basic_dy`` (2x2
  pooling in the squeeze branch, ``L = int(sqrt(4*C_in))``), the MobileNetV2
  ``DYModule`` rules for ``L`` and the squeeze width (pass ``latent_dim`` and
  ``reduction`` to approach them; the computation is otherwise the same) and
  the dynamic classifier ``DYCls``.
"""
import math
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmdyn.utils.validation import check_positive_int

from ._base import (DynamicConvBase, SafeBatchNorm1d, SafeBatchNorm2d, batch_norm_madds,
                    init_bias_, init_kernel_bank_)
from .batched_conv import empty_batch_output, is_empty_batch
from .registry import register_layer


def _hsigmoid2(x: torch.Tensor) -> torch.Tensor:
    """h-sigmoid scaled to [0, 2] (``relu6(x + 3) / 3``), 1 at x = 0."""
    return F.relu6(x + 3.0) / 3.0


def center_tap(x: torch.Tensor, kernel_size, stride, padding, dilation, out_hw):
    """The input values under the kernel's centre tap at every output position,
    ``(B, C, H', W')`` (zeros where the tap falls into the padding)."""
    offs = [((k - 1) // 2) * d - p for k, d, p in zip(kernel_size, dilation, padding)]
    sizes = x.shape[2:]
    if all(o >= 0 and o + s * (n - 1) <= size - 1
           for o, s, n, size in zip(offs, stride, out_hw, sizes)):
        return x[:, :, offs[0]::stride[0], offs[1]::stride[1]][:, :, :out_hw[0], :out_hw[1]]
    x = F.pad(x, (padding[1], padding[1], padding[0], padding[0]))
    offs = [o + p for o, p in zip(offs, padding)]
    return x[:, :, offs[0]::stride[0], offs[1]::stride[1]][:, :, :out_hw[0], :out_hw[1]]


@register_layer('DCD')
class DCDConv2d(DynamicConvBase):
    """Dynamic convolution decomposition (drop-in ``nn.Conv2d``).

    Shapes: input ``(B, C_in, H, W)`` -> output ``(B, C_out, H', W')``.
    Parameters: ``weight`` ``(C_out, C_in/g, kh, kw)`` (W0), optional
    ``bias`` ``(C_out,)``, ``q`` / ``p`` (1x1), ``fc``, ``fc_gate``,
    ``fc_phi``, ``fc_scale`` and two BatchNorms (``bn_q``, ``bn_phi``).

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation,
        groups, bias: As ``nn.Conv2d`` (``bias`` defaults to False).
        latent_dim (int | None): L, at most ``C_in`` (``Q`` compresses the
            input channels; the squeeze branch grows as ``L^4``); ``None`` ->
            ``int(sqrt(C_in))``.
        reduction (int): Squeeze width ``max(C_in, L^2) // reduction`` (min 4).
            Default: 16.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=False, *, latent_dim: Optional[int] = None,
                 reduction: int = 16):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias)
        default_dim = max(int(math.sqrt(in_channels)), 1)
        dim = default_dim if latent_dim is None else latent_dim
        self.latent_dim = check_positive_int('latent_dim', dim)
        if dim > in_channels:  # Q compresses C_in channels into L: L <= C_in
            raise ValueError(f'DCD: latent_dim={dim} must be <= in_channels={in_channels} '
                             '(the latent space compresses the input channels; the paper '
                             f'uses L << C, default int(sqrt(in_channels)) = {default_dim})')
        squeeze = max(max(in_channels, dim * dim) // check_positive_int('reduction',
                                                                         reduction), 4)
        kh, kw = self.kernel_size
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, kh, kw))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.q = nn.Conv2d(in_channels, dim, 1, bias=False)
        self.p = nn.Conv2d(dim, out_channels, 1, bias=False)
        self.bn_q = SafeBatchNorm2d(dim)
        self.bn_phi = SafeBatchNorm1d(dim)
        try:  # the squeeze branch grows as L^4 / reduction^2 (fc_gate, fc_phi)
            self.fc = nn.Linear(in_channels, squeeze, bias=False)
            self.fc_gate = nn.Linear(squeeze, squeeze, bias=False)
            self.fc_phi = nn.Linear(squeeze, dim * dim, bias=False)
            self.fc_scale = nn.Linear(squeeze, out_channels, bias=False)
        except (RuntimeError, MemoryError) as err:
            if 'memory' not in str(err).lower() and not isinstance(err, MemoryError):
                raise
            size = squeeze * (in_channels + squeeze + dim * dim + out_channels)
            raise MemoryError(
                f'DCD: latent_dim={dim} needs {size:.3g} parameters in the squeeze branch '
                f'(width max(in_channels, latent_dim^2) // reduction = {squeeze}), more '
                f'than this machine can allocate; choose a smaller latent_dim (default '
                f'int(sqrt(in_channels)) = {default_dim})') from None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init_kernel_bank_(self.weight.unsqueeze(0), 'conv2d')
        init_bias_(self.bias, self.weight[0].numel())
        for m in (self.q, self.p, self.fc, self.fc_gate, self.fc_phi, self.fc_scale,
                  self.bn_q, self.bn_phi):
            m.reset_parameters()

    def dynamic_params(self, x: torch.Tensor):
        """``Φ(x)`` ``(B, L, L)`` and ``λ(x)`` ``(B, C_out)``."""
        h = self.fc(x.mean((2, 3)))
        h = h * _hsigmoid2(self.fc_gate(h))  # official SEModule_small: gate in [0, 2]
        phi = self.fc_phi(h).view(h.size(0), self.latent_dim, self.latent_dim)
        return phi, _hsigmoid2(self.fc_scale(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        if is_empty_batch(x):
            return empty_batch_output(self, x)
        batch = x.size(0)
        out_hw = self.output_size(int(x.size(2)), int(x.size(3)))  # constants in a graph
        phi, scale = self.dynamic_params(x)
        static = F.conv2d(x, self.weight, self.bias, self.stride, self.padding,
                          self.dilation, self.groups)
        q = self.bn_q(self.q(center_tap(x, self.kernel_size, self.stride, self.padding,
                                        self.dilation, out_hw)))
        # explicit sizes, no -1: an exported Reshape cannot infer a -1 beside a batch of 0
        q = q.reshape(batch, self.latent_dim, out_hw[0] * out_hw[1])
        z = self.bn_phi(torch.matmul(phi.to(q.dtype), q)) + q
        dynamic = self.p(z.view(batch, self.latent_dim, *out_hw))
        return (static * scale.to(static.dtype).view(batch, self.out_channels, 1, 1)
                + dynamic.to(static.dtype))

    def madds(self, input_hw: Tuple[int, int], batch: int = 1,
              training: bool = False) -> Dict[str, int]:
        """Closed-form MAdds of one forward, by part (``P = H'*W'``, ``L`` latent):

        * ``attention``: GAP ``B*C_in*H*W``, the FCs ``B*(C_in*S + S*S + S*L² +
          S*C_out)`` (``S`` the squeeze width), the gate and the h-sigmoids
          ``4*B*S + 2*B*C_out``;
        * ``conv``: the static ``W0 * x``;
        * ``conv_1x1``: ``Q`` ``B*C_in*L*P`` and ``P`` ``B*L*C_out*P``;
        * ``dynamic``: both BatchNorms, ``Φ·Q`` ``B*L²*P`` and the residual;
        * ``scale``: ``λ`` on the static output and the final sum ``2*B*C_out*P``.
        """
        h, w = input_hw
        out_hw = self.output_size(h, w)
        b, cin, cout = batch, self.in_channels, self.out_channels
        dim, squeeze = self.latent_dim, self.fc.out_features
        latent = b * dim * out_hw[0] * out_hw[1]  # values of Q x
        return {
            'attention': (b * cin * h * w + b * (cin * squeeze + squeeze * squeeze
                                                 + squeeze * dim * dim + squeeze * cout)
                          + 4 * b * squeeze + 2 * b * cout),
            'conv': self.static_conv_madds(b, out_hw),
            'conv_1x1': latent * cin + latent * cout,
            'dynamic': 2 * batch_norm_madds(latent, training) + latent * dim + latent,
            'scale': 2 * b * cout * out_hw[0] * out_hw[1],
        }
