"""DynamicConv: Dynamic Convolution, attention over convolution kernels.

Paper: Chen et al., "Dynamic Convolution: Attention over Convolution Kernels",
CVPR 2020. ``K`` kernels are mixed per sample by ``π = softmax(z / T)`` where
``z`` comes from a squeeze-and-excitation style branch:
GAP -> FC(C_in -> hidden) -> ReLU -> FC(hidden -> K). Kernels and biases are
mixed with the same ``π`` and the batch is convolved by the shared
:func:`~mmdyn.ops.batched_conv.mixed_kernel_conv2d`. The paper anneals T from
30 to 1 over the first 10 epochs (``TemperatureAnnealHook``).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmdyn.utils.validation import (check_choice, check_fraction, check_positive_int,
                                    check_temperature)

from ._base import TemperatureMixin, at_least_float32
from .batched_conv import KernelMixtureConv2d
from .registry import register_layer


@register_layer('DyConv')
class DynamicConv2d(TemperatureMixin, KernelMixtureConv2d):
    """Dynamic convolution (Chen et al., CVPR 2020), a drop-in ``nn.Conv2d``.

    Shapes: input ``(B, C_in, H, W)`` -> output ``(B, C_out, H', W')``.
    Parameters: ``weight`` ``(K, C_out, C_in/g, kh, kw)``, ``bias``
    ``(K, C_out)``, and the attention MLP ``fc1`` / ``fc2``.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation,
        groups, bias: As ``nn.Conv2d`` (``bias`` defaults to False).
        kernel_num (int): K. Default: 4.
        reduction (float): Hidden width of the attention MLP as a fraction of
            ``C_in`` (the paper's squeeze ratio 4). Default: 0.25.
        min_hidden (int): Lower bound of the hidden width. Default: 4.
        temperature (float): Softmax temperature T. Default: 30.
        strategy (str): Per-sample convolution strategy. Default: ``'auto'``.
            While traced or exported the layer runs the batch-agnostic path
            whatever the strategy (:func:`~mmdyn.ops.batched_conv.is_exporting`).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=False, *, kernel_num: int = 4,
                 reduction: float = 0.25, min_hidden: int = 4, temperature: float = 30.0,
                 strategy: str = 'auto'):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias)
        self.kernel_num = check_positive_int('kernel_num', kernel_num)
        reduction = check_fraction('reduction', reduction)
        hidden = max(int(in_channels * reduction), check_positive_int('min_hidden', min_hidden))
        self.temperature = check_temperature(temperature)
        self.strategy = check_choice('strategy', strategy, self.strategies)
        self.fc1 = nn.Linear(in_channels, hidden)
        self.fc2 = nn.Linear(hidden, kernel_num)
        self.create_kernel_bank(kernel_num, bias)
        self.reset_parameters()

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """``softmax(FC(ReLU(FC(GAP(x)))) / T)``, shape ``(B, K)``, float32."""
        z = self.fc2(F.relu(self.fc1(x.mean((2, 3)))))
        return torch.softmax(at_least_float32(z) / self.temperature, dim=1)

    def attention_madds(self, height: int, width: int) -> int:
        """Per sample: GAP ``C_in*H*W``, the MLP ``C_in*hidden + hidden*K``, /T and
        softmax ``2*K``."""
        cin, hidden, num_k = self.in_channels, self.fc1.out_features, self.kernel_num
        return cin * height * width + cin * hidden + hidden * num_k + 2 * num_k
