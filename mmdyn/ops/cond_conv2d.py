"""CondConv: Conditionally Parameterized Convolutions.

Paper: Yang et al., "CondConv: Conditionally Parameterized Convolutions for
Efficient Inference", NeurIPS 2019 (timm's ``CondConv2d`` follows the same
formulation). ``E`` expert kernels are mixed per sample by independent sigmoid
routing weights ``r = sigmoid(FC(GAP(x)))`` (they do not sum to one), then the
batch is convolved by :func:`~mmdyn.ops.batched_conv.mixed_kernel_conv2d`.
"""
import torch
import torch.nn as nn

from mmdyn.utils.validation import check_choice, check_positive_int

from ._base import at_least_float32
from .batched_conv import KernelMixtureConv2d
from .registry import register_layer


@register_layer('CondConv')
class CondConv2d(KernelMixtureConv2d):
    """Conditionally parameterised convolution (drop-in ``nn.Conv2d``).

    Shapes: input ``(B, C_in, H, W)`` -> output ``(B, C_out, H', W')``.
    Parameters: ``weight`` ``(E, C_out, C_in/g, kh, kw)``, ``bias`` ``(E,
    C_out)``, routing ``routing`` (``Linear(C_in, E)``). No temperature.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation,
        groups, bias: As ``nn.Conv2d`` (``bias`` defaults to False).
        kernel_num (int): E, number of experts. Default: 4.
        dropout (float): Dropout on the pooled routing input (the paper uses
            it in large models). Default: 0.
        strategy (str): Per-sample convolution strategy. Default: ``'auto'``.
            While traced or exported the layer runs the batch-agnostic path
            whatever the strategy (:func:`~mmdyn.ops.batched_conv.is_exporting`).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=False, *, kernel_num: int = 4,
                 dropout: float = 0.0, strategy: str = 'auto'):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias)
        self.kernel_num = check_positive_int('kernel_num', kernel_num)
        if not 0 <= dropout < 1:
            raise ValueError(f'dropout must be in [0, 1), got {dropout!r}')
        self.strategy = check_choice('strategy', strategy, self.strategies)
        self.dropout = nn.Dropout(dropout)
        self.routing = nn.Linear(in_channels, kernel_num)
        self.create_kernel_bank(kernel_num, bias)
        self.reset_parameters()

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """Routing weights ``sigmoid(FC(GAP(x)))``, shape ``(B, E)``."""
        return torch.sigmoid(at_least_float32(self.routing(self.dropout(x.mean((2, 3))))))

    def attention_madds(self, height: int, width: int) -> int:
        """Per sample: GAP ``C_in*H*W`` and the routing ``C_in*E``."""
        return self.in_channels * (height * width + self.kernel_num)
