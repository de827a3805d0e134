"""One routine that convolves every sample of a batch with its own kernel.

All mmdyn layers that aggregate a per-sample kernel (A2D2C/A2D2C+ fast path,
ODConv, DynamicConv, CondConv) call :func:`batched_dynamic_conv2d`. It has three
exact strategies with different speed profiles:

``grouped``
    Reshape ``(B, C_in, H, W)`` to ``(1, B*C_in, H, W)`` and run ONE grouped
    convolution with ``groups = B*g``. Best on GPUs and, on CPUs, for large
    feature maps with few channels (ResNet stage 1/2 shapes).
``loop``
    One ordinary ``F.conv2d`` per sample. On CPU it beats ``grouped`` where the
    grouped kernel is slow (many channels, small maps), at the cost of B calls.
``bmm``
    ``unfold`` (im2col) the input once and multiply by the per-sample kernels
    with one batched matrix product. On CPU it is the fastest for small maps
    with many channels (ResNet stage 3/4 shapes) because it is a single large
    GEMM; its im2col buffer is ``B*C_in*kh*kw*H'*W'`` elements, so it is never
    chosen for large maps.

``strategy='auto'`` (the default) picks by device and shape with
:func:`select_strategy`; the rule and the measurements behind it are in its
docstring. The module-level :data:`FORCED_STRATEGY` (or the environment variable
``MMDYN_BATCHED_CONV``) overrides the choice globally, which the benchmark uses
to show each strategy's figures.
"""
import os
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

STRATEGIES = ('auto', 'grouped', 'loop', 'bmm')

#: Global override of the ``auto`` choice (``None`` = decide by shape).
FORCED_STRATEGY: Optional[str] = os.environ.get('MMDYN_BATCHED_CONV') or None


def select_strategy(x: torch.Tensor, weight: torch.Tensor, out_hw: Tuple[int, int],
                    groups: int) -> str:
    """Choose how to run per-sample kernels for this input.

    Rule (CPU; measured with ``tools/benchmark_layers.py`` on the 2-core CI
    machine, ResNet 3x3 stage shapes at batch 32):

    * batch 1 -> ``loop`` (a single plain convolution, no reshaping at all);
    * depthwise / grouped kernels with fewer than 8 input channels per group ->
      ``grouped`` (im2col would multiply tiny matrices);
    * output maps of at most 28x28 positions (``H'*W' <= 784``) -> ``bmm``:
      one GEMM of ``(C_out, C_in*k*k) x (C_in*k*k, H'*W')`` per sample, close
      to the static convolution's cost, while ``grouped`` costs 2.5-7x there;
    * larger maps -> ``grouped``, which is fast when maps are large.

    On CUDA the grouped convolution is used (cuDNN runs it well and it is a
    single launch) except at batch 1.
    """
    if FORCED_STRATEGY not in (None, '', 'auto'):
        if FORCED_STRATEGY not in STRATEGIES:
            raise ValueError(f'unknown forced strategy {FORCED_STRATEGY!r} (MMDYN_BATCHED_CONV '
                             f'or batched_conv.FORCED_STRATEGY); expected one of '
                             f'{list(STRATEGIES)}')
        return FORCED_STRATEGY
    batch = x.size(0)
    if batch == 1:
        return 'loop'
    if x.device.type != 'cpu':
        return 'grouped'
    cin_per_group = weight.size(2)
    if cin_per_group < 8:
        return 'grouped'
    if out_hw[0] * out_hw[1] <= 784:
        return 'bmm'
    return 'grouped'


def mix_kernels(attn: torch.Tensor, weight: torch.Tensor, bias=None):
    """Per-sample kernel ``Σ_k attn[b, k] W_k`` (and bias), attention ``(B, K)``.

    Returns:
        ``(B, C_out, C_in/g, kh, kw)`` kernels and ``(B, C_out)`` biases or None.
    """
    num_k = weight.size(0)
    attn = attn.to(weight.dtype)
    kernel = (attn @ weight.reshape(num_k, -1)).view(attn.size(0), *weight.shape[1:])
    return kernel, (None if bias is None else attn @ bias)


def batched_dynamic_conv2d(x: torch.Tensor, weight: torch.Tensor,
                           bias: Optional[torch.Tensor] = None, stride=(1, 1),
                           padding=(0, 0), dilation=(1, 1), groups: int = 1,
                           strategy: str = 'auto') -> torch.Tensor:
    """Convolve sample ``b`` of ``x`` with kernel ``weight[b]`` (and ``bias[b]``).

    Args:
        x: Input, ``(B, C_in, H, W)``.
        weight: Per-sample kernels, ``(B, C_out, C_in/groups, kh, kw)``.
        bias: Optional per-sample bias, ``(B, C_out)``.
        stride, padding, dilation: As in ``F.conv2d`` (pairs).
        groups: Channel groups of each per-sample convolution.
        strategy: ``'auto'``, ``'grouped'``, ``'loop'`` or ``'bmm'`` (see the
            module docstring). All give the same result up to float round-off.

    Returns:
        ``(B, C_out, H', W')``, in ``channels_last`` memory format if ``x`` was.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f'unknown strategy {strategy!r}; expected one of {list(STRATEGIES)}')
    batch, cin, height, width = x.shape
    cout, kh, kw = weight.size(1), weight.size(3), weight.size(4)
    if weight.size(0) != batch:
        raise ValueError(f'weight has {weight.size(0)} kernels for a batch of {batch}')
    out_h = (height + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    out_w = (width + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    if strategy == 'auto':
        strategy = select_strategy(x, weight, (out_h, out_w), groups)
    channels_last = x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(
        memory_format=torch.channels_last)

    if strategy == 'grouped':
        out = F.conv2d(x.reshape(1, batch * cin, height, width),
                       weight.reshape(batch * cout, cin // groups, kh, kw),
                       None if bias is None else bias.reshape(-1),
                       stride, padding, dilation, batch * groups)
        out = out.view(batch, cout, out_h, out_w)
    elif strategy == 'loop':
        out = torch.cat([
            F.conv2d(x[b:b + 1], weight[b], None if bias is None else bias[b],
                     stride, padding, dilation, groups) for b in range(batch)
        ])
    else:  # bmm
        cols = F.unfold(x, (kh, kw), dilation=dilation, padding=padding, stride=stride)
        cols = cols.view(batch, groups, (cin // groups) * kh * kw, out_h * out_w)
        w = weight.reshape(batch, groups, cout // groups, (cin // groups) * kh * kw)
        out = torch.matmul(w, cols).view(batch, cout, out_h, out_w)
        if bias is not None:
            out = out + bias.to(out.dtype).view(batch, cout, 1, 1)
    if channels_last:
        out = out.contiguous(memory_format=torch.channels_last)
    return out
