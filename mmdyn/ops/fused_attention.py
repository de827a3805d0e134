"""One-pass attention + kernel aggregation + convolution, and a memory-saving backward.

The per-sample kernel of A2D2C/A2D2C+ (and of ODConv, DynamicConv, CondConv) is a
mixture of a bank of K kernels ``W_k`` (``(K, C_out, C_in, kh, kw)``):

    ``kernel_b[n] = (Σ_k a[b, k, n] W_k[n]) ⊙ s_b``            (``s_b``: optional
    per-sample scale of the input dims ``(C_in, kh, kw)``)

and, for A2D2C, ``a[b, :, n] = softmax_k((W_k[n] · patch_b + bias_k[n]) / T)``,
``patch_b`` being the mean input patch under the sampled positions
(:func:`~mmdyn.ops.a2d2c_conv2d.mean_input_patches`). The softmax is over K
separately for every output channel n, so the attention logits, the softmax, the
aggregation and the convolution of a *block* of output channels need only that
block of the bank. :func:`fused_mixture_conv2d` walks the output channels block by
block, and the samples chunk by chunk (a block of the bank plus the kernels of a
chunk are about :data:`BLOCK_ELEMENTS` values, i.e. stay in cache, :func:`partition`):
the bank is read from memory once, instead of once for the logits and once more
for the aggregation.

Per block and chunk, the kernels are aggregated by one matrix product:
``(blk, B, K) @ (blk, K, C_in*kh*kw)`` with per-channel weights, ``(B, K) @ (K,
blk*C_in*kh*kw)`` with one weight per kernel (on CPU about 2x the throughput of
``mul``/``addcmul_`` chains and 15-40x that of ``einsum('bkn,kni->bni')``). They are
then convolved: a 1x1 convolution with stride 1 is one batched matrix product over
the samples (no im2col: ``(B, blk, C_in) @ (B, C_in, H*W)``), other kernels one
``F.conv2d`` per sample.

With autograd recording, the computation is a :class:`torch.autograd.Function`
that keeps only its inputs (``x``, the patch or the attention, the scales, the
bank) for backward and *recomputes* the per-sample kernels block by block there,
instead of storing ``B x C_out x C_in x kh x kw`` kernel values per layer. Its
backward is exact (same maths as autograd through the plain path; tested against
it and with float64 ``gradcheck``).

Pure PyTorch; used by ``strategy='auto'`` on CPU for ungrouped convolutions
(:func:`use_fused`). ``MMDYN_FUSED=0`` in the environment (or
``fused_attention.ENABLED = False``) switches it off.
"""
import os
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from ._base import conv_output_hw
from .batched_conv import is_exporting

#: Whether ``strategy='auto'`` may use the fused path (env ``MMDYN_FUSED=0`` disables).
ENABLED: bool = os.environ.get('MMDYN_FUSED', '1').strip().lower() not in ('0', 'false', 'off',
                                                                         'no')

#: Target size (values) of a block of the bank plus the kernels of one chunk of
#: samples built from it (:func:`partition`): 16 MB of float32, half the L3 cache of
#: the CI machine (2 cores, 1 MB L2 each, 32 MB L3).
BLOCK_ELEMENTS = 1 << 22

#: Smallest block of output channels (unless the layer has fewer): smaller blocks make
#: the per-sample convolutions inefficient (512x7x7, 2 threads, batch 8: blocks of 64
#: channels 3.2-3.6x a static conv, of 128 channels 2.8-2.9x).
MIN_BLOCK_CHANNELS = 128

#: Kernel rows (``C_in*kh*kw``) from which kernels are mixed sample by sample
#: (:func:`_mix`) and the bank's gradient accumulated by ``addcmul_``.
PER_SAMPLE_MIX_MIN_ROW = 1024

#: Output maps with fewer positions keep the plain strategies (``maps`` in training):
#: there a per-sample kernel costs more to build (and to back-propagate) than it saves
#: over K convolutions. ResNet-18 at 32x32 (maps 8x8..1x1), training, batch 32: fused
#: everywhere 15x the static network, plain 4.9-5.3x; ResNet-50 at 224 (7x7 maps in
#: stage 4) gains from the fused path.
MIN_POSITIONS = 25



def _autocast_on(device_type: str) -> bool:
    """Whether autocast is active for ``device_type`` (``torch.is_autocast_enabled``
    takes a device type since torch 2.4; older versions had one call per device)."""
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4
        return torch.is_autocast_enabled() if device_type == 'cuda' else \
            torch.is_autocast_cpu_enabled()


def use_fused(x: torch.Tensor, bank: torch.Tensor, groups: int,
              out_hw: Optional[Tuple[int, int]] = None) -> bool:
    """Whether ``strategy='auto'`` runs :func:`fused_mixture_conv2d` for this call.

    True on CPU for ungrouped convolutions of a contiguous (NCHW) float32/float64
    input of the bank's dtype with an output map (``out_hw``) of at least
    :data:`MIN_POSITIONS` positions, outside autocast, tracing, scripting,
    exporting and ``torch.compile``, unless :data:`ENABLED` is False or a strategy
    is forced with ``MMDYN_BATCHED_CONV``. Tracing (also with
    ``export_safe_path(False)``, as the FLOP counter does) keeps the plain
    strategies, whose ops a tracer sees.
    """
    if out_hw is not None and out_hw[0] * out_hw[1] < MIN_POSITIONS:
        return False
    from . import batched_conv  # read at call time: tests and users may patch it
    if not ENABLED or batched_conv.FORCED_STRATEGY not in (None, '', 'auto'):
        return False
    if groups != 1 or x.device.type != 'cpu' or bank.device.type != 'cpu':
        return False
    if x.dtype != bank.dtype or x.dtype not in (torch.float32, torch.float64):
        return False
    if torch.jit.is_tracing() or torch.jit.is_scripting() or is_exporting():
        return False
    compiler = getattr(torch, 'compiler', None)
    if compiler is not None and compiler.is_compiling():
        return False
    if _autocast_on(x.device.type):
        return False
    return x.dim() == 4 and x.size(0) > 0 and x.is_contiguous()


def _equal_parts(total: int, size: int, multiple: int = 1) -> List[Tuple[int, int]]:
    """``[0, total)`` cut into near-equal ``(start, end)`` parts of at most about
    ``size`` (rounded up to ``multiple`` unless one part holds everything)."""
    size = max(1, size)
    if size >= total:
        return [(0, total)]
    num = -(-total // size)
    size = -(-total // num)
    size = min(total, -(-size // multiple) * multiple)
    return [(s, min(total, s + size)) for s in range(0, total, size)]


def partition(cout: int, per_channel: int, batch: int, num_k: int,
              block_elements: Optional[int] = None
              ) -> Tuple[List[Tuple[int, int]], List[Tuple[int, int]]]:
    """Blocks of output channels and chunks of samples of the fused loops.

    A block's slice of the bank (``K x blk x I`` values, ``I = C_in*kh*kw``) plus
    the kernels of one chunk of samples built from it (``chunk x blk x I``) hold
    about ``block_elements`` values (default :data:`BLOCK_ELEMENTS`), so that both
    stay in cache while the block is used. The block size assumes chunks of
    ``min(B, K)`` samples; the chunks then take what the block leaves. Blocks have
    at least :data:`MIN_BLOCK_CHANNELS` channels (smaller output blocks make the
    per-sample convolutions inefficient) and are multiples of 8 channels unless
    one block holds them all. An explicit ``block_elements`` (tests) is used as
    given, without the minimum and the rounding.

    Returns:
        ``(channel blocks, sample chunks)``, each a list of ``(start, end)``.
    """
    exact = block_elements is not None
    budget = BLOCK_ELEMENTS if block_elements is None else block_elements
    per_channel = max(1, per_channel)
    size = budget // ((num_k + min(batch, num_k)) * per_channel)
    if not exact:
        size = max(size, MIN_BLOCK_CHANNELS)
    blocks = _equal_parts(cout, size, 1 if exact else 8)
    largest = max(n1 - n0 for n0, n1 in blocks)
    chunks = _equal_parts(batch, (budget - num_k * largest * per_channel)
                          // (largest * per_channel))
    return blocks, chunks


# --------------------------------------------------------------------------- forward
def _block_attention(bank_blk, bias_blk, patch, attn, out_scale, temperature, n0, n1):
    """Mixing weights of one block, ``(B, K, blk)`` (after ``out_scale``), and the
    softmax output / given attention before that scale (for backward)."""
    if patch is not None:
        # logits[b, k, n] = W_k[n] · patch_b (+ b_k[n]), (B, K, blk), by one matmul; the
        # faster operand order depends on the row length (measured on the CI CPU)
        if bank_blk.size(2) < 2048:
            logits = torch.matmul(bank_blk, patch.t()).permute(2, 0, 1)
        else:
            logits = torch.matmul(patch.unsqueeze(0), bank_blk.transpose(1, 2)).transpose(0, 1)
        if bias_blk is not None:
            logits = logits + bias_blk.unsqueeze(0)
        base = torch.softmax(logits / temperature, dim=1)
    elif attn.dim() == 2:
        base = attn.unsqueeze(2).expand(-1, -1, n1 - n0)
    else:
        base = attn[:, :, n0:n1]
    mix = base if out_scale is None else base * out_scale[:, None, n0:n1]
    return mix, base


def _mix(mix, bank_blk, out=None, attn=None, out_scale=None, n0=0):
    """``kernel[b, n] = Σ_k mix[b, k, n] W_k[n]``, ``(B, blk, I)``.

    With one weight per kernel (``attn`` ``(B, K)``, ``mix = attn ⊙ out_scale``): one
    GEMM ``(B, K) @ (K, blk*I)`` into ``out``, then the output-channel scale. With
    per-channel weights and long rows (``I >=`` :data:`PER_SAMPLE_MIX_MIN_ROW`): one
    bmm over the channels per sample, ``(blk, 1, K) @ (blk, K, I)``, into ``out``;
    with short rows: one bmm over the channels for all samples, ``(blk, B, K) @
    (blk, K, I)``, returned as a (strided) view of new memory. Products into
    strided outputs are avoided: CPU ``bmm`` then falls back to one small product
    per channel, which does not use a second thread (measured 3-12 against 17-27 G
    multiply-adds/s with 2 threads)."""
    batch, (num_k, blk, per_channel) = mix.size(0), bank_blk.shape
    if attn is not None and attn.dim() == 2:
        rhs = bank_blk.reshape(num_k, blk * per_channel)
        if out is None:
            kern = torch.mm(attn, rhs).view(batch, blk, per_channel)
            return kern if out_scale is None else kern * out_scale[:, n0:n0 + blk, None]
        torch.mm(attn, rhs, out=out.view(batch, blk * per_channel))
        if out_scale is not None:
            out.mul_(out_scale[:, n0:n0 + blk, None])
        return out
    rhs = bank_blk.transpose(0, 1)                                            # (blk, K, I)
    if out is not None and per_channel >= PER_SAMPLE_MIX_MIN_ROW:
        lhs = mix.permute(0, 2, 1).contiguous().unsqueeze(2)                   # (B, blk, 1, K)
        for b in range(batch):
            torch.matmul(lhs[b], rhs, out=out[b].unsqueeze(1))
        return out
    return torch.bmm(mix.permute(2, 0, 1).contiguous(), rhs).transpose(0, 1)


def _pointwise(kernel_hw, stride, padding) -> bool:
    return tuple(kernel_hw) == (1, 1) and tuple(stride) == (1, 1) and tuple(padding) == (0, 0)


def _chunk_kernels(buffer, mix, bank_blk, attn, in_scale, out_scale, n0, s0, s1):
    """Kernels ``(s1-s0, blk, I)`` of samples ``s0:s1`` for one block, built in the
    front of ``buffer`` and scaled by ``in_scale`` (if given) in place."""
    blk, per_channel = bank_blk.shape[1:]
    out = buffer[:(s1 - s0) * blk * per_channel].view(s1 - s0, blk, per_channel)
    kern = _mix(mix[s0:s1], bank_blk, out, _rows(attn, s0, s1), _rows(out_scale, s0, s1), n0)
    if in_scale is not None:
        kern.mul_(in_scale[s0:s1].unsqueeze(1))
    return kern


def _rows(t, s0, s1):
    return None if t is None else t[s0:s1]


def _forward(x, bank, bias_bank, patch, attn, in_scale, out_scale, temperature, geom,
             block_elements):
    """The forward without autograd: one kernel buffer reused by every block and
    chunk of samples, outputs written in place."""
    stride, padding, dilation, kernel_hw = geom
    num_k, cout = bank.shape[:2]
    batch, cin = x.shape[:2]
    flat = bank.reshape(num_k, cout, -1)
    per_channel = flat.size(2)
    out_hw = conv_output_hw(x.shape[2:], kernel_hw, stride, padding, dilation)
    blocks, chunks = partition(cout, per_channel, batch, num_k, block_elements)
    out = x.new_empty(batch, cout, *out_hw)
    out_flat = out.view(batch, cout, -1)
    cols = x.view(batch, cin, -1) if _pointwise(kernel_hw, stride, padding) else None
    buffer = x.new_empty(max(s1 - s0 for s0, s1 in chunks) * max(n1 - n0 for n0, n1 in blocks)
                         * per_channel)
    for n0, n1 in blocks:
        blk = n1 - n0
        bank_blk = flat[:, n0:n1]
        bias_blk = None if bias_bank is None else bias_bank[:, n0:n1]
        mix, _ = _block_attention(bank_blk, bias_blk, patch, attn, out_scale, temperature, n0,
                                  n1)
        for s0, s1 in chunks:
            kern = _chunk_kernels(buffer, mix, bank_blk, attn, in_scale, out_scale, n0, s0, s1)
            if cols is not None:  # 1x1: (c, blk, C_in) @ (c, C_in, H*W), no im2col
                torch.bmm(kern, cols[s0:s1], out=out_flat[s0:s1, n0:n1])
                continue
            for b in range(s0, s1):
                out[b, n0:n1] = F.conv2d(x[b:b + 1], kern[b - s0].view(blk, cin, *kernel_hw),
                                         None, stride, padding, dilation)[0]
        if bias_blk is not None:
            out_flat[:, n0:n1] += (mix * bias_blk.unsqueeze(0)).sum(1).unsqueeze(2)
    return out


def _forward_autograd(x, bank, bias_bank, patch, attn, in_scale, out_scale, temperature, geom,
                      block_elements):
    """The same blocks through plain autograd (every block's kernels are kept for
    backward): the reference of the memory-saving backward."""
    stride, padding, dilation, kernel_hw = geom
    num_k, cout = bank.shape[:2]
    batch, cin = x.shape[:2]
    flat = bank.reshape(num_k, cout, -1)
    per_channel = flat.size(2)
    outs = []
    for n0, n1 in partition(cout, per_channel, batch, num_k, block_elements)[0]:
        bank_blk = flat[:, n0:n1]
        bias_blk = None if bias_bank is None else bias_bank[:, n0:n1]
        mix, _ = _block_attention(bank_blk, bias_blk, patch, attn, out_scale, temperature, n0,
                                  n1)
        kern = _mix(mix, bank_blk, None, attn, out_scale, n0)
        if in_scale is not None:
            kern = kern * in_scale.unsqueeze(1)
        bias = None if bias_blk is None else (mix * bias_blk.unsqueeze(0)).sum(1)
        outs.append(torch.cat([
            F.conv2d(x[b:b + 1], kern[b].reshape(n1 - n0, cin, *kernel_hw),
                     None if bias is None else bias[b], stride, padding, dilation)
            for b in range(batch)]))
    return torch.cat(outs, 1)


# --------------------------------------------------------------------------- backward
def _accumulate_bank_grad(grad_blk, mix, grad_kern, first):
    """``grad_blk[k, n] (+)= Σ_b mix[b, k, n] grad_kern[b, n]`` (``grad_blk`` a
    ``(K, blk, I)`` slice of the bank's gradient; written if ``first``)."""
    num_k = grad_blk.size(0)
    if grad_kern.size(2) >= PER_SAMPLE_MIX_MIN_ROW:  # long rows: in place, no temporary
        weights = mix.unsqueeze(3)                                             # (c, K, blk, 1)
        for k in range(num_k):
            for b in range(grad_kern.size(0)):
                if first and b == 0:
                    torch.mul(grad_kern[0], weights[0, k], out=grad_blk[k])
                else:
                    grad_blk[k].addcmul_(grad_kern[b], weights[b, k])
        return
    prod = torch.bmm(mix.permute(2, 1, 0).contiguous(), grad_kern.transpose(0, 1))  # (blk, K, I)
    if first:
        grad_blk.copy_(prod.transpose(0, 1))
    else:
        grad_blk.add_(prod.transpose(0, 1))


class _FusedMixtureConv(torch.autograd.Function):
    """Forward as :func:`_forward`; saves only the inputs and recomputes the
    per-sample kernels block by block in backward."""

    @staticmethod
    def forward(ctx, x, bank, bias_bank, patch, attn, in_scale, out_scale, temperature, geom,
                block_elements):
        ctx.save_for_backward(x, bank, bias_bank, patch, attn, in_scale, out_scale)
        ctx.temperature, ctx.geom, ctx.block_elements = temperature, geom, block_elements
        return _forward(x, bank, bias_bank, patch, attn, in_scale, out_scale, temperature,
                        geom, block_elements)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        x, bank, bias_bank, patch, attn, in_scale, out_scale = ctx.saved_tensors
        need = ctx.needs_input_grad
        temperature, geom = ctx.temperature, ctx.geom
        stride, padding, dilation, kernel_hw = geom
        num_k, cout = bank.shape[:2]
        batch, cin = x.shape[:2]
        flat = bank.reshape(num_k, cout, -1)
        per_channel = flat.size(2)
        grad_out = grad_out.contiguous()
        gy_flat = grad_out.view(batch, cout, -1)
        pointwise = _pointwise(kernel_hw, stride, padding)
        cols = x.view(batch, cin, -1) if pointwise else None

        # Accumulated over the blocks: zeros; written block by block: empty.
        grad_x = torch.zeros_like(x) if need[0] else None
        grad_bank = torch.empty_like(flat) if need[1] else None
        grad_bias = torch.empty_like(bias_bank) if bias_bank is not None and need[2] else None
        grad_patch = torch.zeros_like(patch) if patch is not None and need[3] else None
        grad_attn = None
        if attn is not None and need[4]:
            grad_attn = torch.zeros_like(attn) if attn.dim() == 2 else torch.empty_like(attn)
        grad_in_scale = torch.zeros_like(in_scale) if in_scale is not None and need[5] else None
        grad_out_scale = (torch.empty_like(out_scale)
                          if out_scale is not None and need[6] else None)
        grad_cols = None if grad_x is None or cols is None else grad_x.view(batch, cin, -1)
        blocks, chunks = partition(cout, per_channel, batch, num_k, ctx.block_elements)
        size = max(s1 - s0 for s0, s1 in chunks) * max(n1 - n0 for n0, n1 in blocks) * per_channel
        kern_buffer, grad_buffer = x.new_empty(size), x.new_empty(size)
        scaled_buffer = None if in_scale is None else x.new_empty(size)

        for n0, n1 in blocks:
            blk = n1 - n0
            bank_blk = flat[:, n0:n1]                                          # (K, blk, I)
            bias_blk = None if bias_bank is None else bias_bank[:, n0:n1]
            mix, base = _block_attention(bank_blk, bias_blk, patch, attn, out_scale,
                                         temperature, n0, n1)
            grad_mix = x.new_empty(batch, num_k, blk)
            grad_bank_blk = None if grad_bank is None else grad_bank[:, n0:n1]
            for chunk, (s0, s1) in enumerate(chunks):
                mixed = _chunk_kernels(kern_buffer, mix, bank_blk, attn, None, out_scale, n0, s0,
                                       s1)                                     # (c, blk, I)
                kern = mixed
                if in_scale is not None:
                    kern = torch.mul(mixed, in_scale[s0:s1].unsqueeze(1),
                                     out=scaled_buffer[:mixed.numel()].view_as(mixed))
                grad_kern = grad_buffer[:mixed.numel()].view_as(mixed)

                # Convolution backward of the chunk: d/dx and d/dkernel.
                if cols is not None:
                    gy = gy_flat[s0:s1, n0:n1]                                 # (c, blk, P)
                    if grad_cols is not None:
                        grad_cols[s0:s1].baddbmm_(kern.transpose(1, 2), gy)
                    torch.bmm(gy, cols[s0:s1].transpose(1, 2), out=grad_kern)
                else:
                    for b in range(s0, s1):
                        gi, gw, _ = torch.ops.aten.convolution_backward(
                            grad_out[b:b + 1, n0:n1], x[b:b + 1],
                            kern[b - s0].view(blk, cin, *kernel_hw), None, stride, padding,
                            dilation, False, [0, 0], 1, [grad_x is not None, True, False])
                        if grad_x is not None:
                            grad_x[b:b + 1].add_(gi)
                        grad_kern[b - s0] = gw.view(blk, -1)
                if grad_in_scale is not None:
                    grad_in_scale[s0:s1] += (grad_kern * mixed).sum(1)
                if in_scale is not None:
                    grad_kern.mul_(in_scale[s0:s1].unsqueeze(1))
                # d/dmix[b, k, n] = <W_k[n], dkernel_b[n]>
                grad_mix[s0:s1] = torch.bmm(grad_kern.transpose(0, 1),
                                            bank_blk.permute(1, 2, 0)).permute(1, 2, 0)
                if grad_bank_blk is not None:  # Σ_b mix[b, k, n] dkernel_b[n]
                    _accumulate_bank_grad(grad_bank[:, n0:n1], mix[s0:s1], grad_kern,
                                          chunk == 0)
            if bias_blk is not None:  # the mixed bias: + bias_k[n] * Σ_p dy[b, n, p]
                gy_sum = gy_flat[:, n0:n1].sum(2)                              # (B, blk)
                grad_mix = grad_mix + bias_blk.unsqueeze(0) * gy_sum.unsqueeze(1)
            if grad_bias is not None:
                grad_bias[:, n0:n1] = (mix * gy_sum.unsqueeze(1)).sum(0)
            # Through the output scale (ODConv's filter attention).
            grad_base = grad_mix
            if out_scale is not None:
                if grad_out_scale is not None:
                    grad_out_scale[:, n0:n1] = (grad_mix * base).sum(1)
                grad_base = grad_mix * out_scale[:, None, n0:n1]
            if patch is None:
                if grad_attn is not None:
                    if attn.dim() == 2:
                        grad_attn.add_(grad_base.sum(2))
                    else:
                        grad_attn[:, :, n0:n1] = grad_base
                continue
            # Softmax over K of logits / T, then the logits' own gradients.
            grad_logits = base * (grad_base - (grad_base * base).sum(1, keepdim=True))
            grad_logits = grad_logits / temperature                            # (B, K, blk)
            if grad_bias is not None:
                grad_bias[:, n0:n1] += grad_logits.sum(0)
            if grad_bank is not None:  # Σ_b dlogits[b, k, n] patch_b
                grad_bank[:, n0:n1].baddbmm_(grad_logits.permute(1, 2, 0),
                                             patch.unsqueeze(0).expand(num_k, -1, -1))
            if grad_patch is not None:  # Σ_{k, n} dlogits[b, k, n] W_k[n]
                grad_patch.add_(torch.matmul(grad_logits.transpose(0, 1), bank_blk).sum(0))
        return (grad_x, None if grad_bank is None else grad_bank.view_as(bank), grad_bias,
                grad_patch, grad_attn, grad_in_scale, grad_out_scale, None, None, None)


# --------------------------------------------------------------------------- public API
def fused_mixture_conv2d(x: torch.Tensor, bank: torch.Tensor,
                         bias_bank: Optional[torch.Tensor] = None, *,
                         patch: Optional[torch.Tensor] = None, temperature: float = 1.0,
                         attn: Optional[torch.Tensor] = None,
                         in_scale: Optional[torch.Tensor] = None,
                         out_scale: Optional[torch.Tensor] = None, stride: Sequence[int] = (1, 1),
                         padding: Sequence[int] = (0, 0), dilation: Sequence[int] = (1, 1),
                         save_memory: bool = True,
                         block_elements: Optional[int] = None) -> torch.Tensor:
    """Per-sample mixture-of-kernels convolution, one block of output channels at a time.

    Exactly one of ``patch`` (A2D2C: the attention is computed here from the
    bank) and ``attn`` (the attention is given) must be set.

    Args:
        x: Input ``(B, C_in, H, W)`` (ungrouped convolution).
        bank: Kernel bank ``(K, C_out, C_in, kh, kw)``.
        bias_bank: ``(K, C_out)`` biases mixed by the same weights, or None.
        patch: ``(B, C_in*kh*kw)`` mean input patch; the weights are then
            ``softmax_k((W_k[n] · patch_b + bias_k[n]) / temperature)``.
        temperature: T of that softmax.
        attn: Given weights ``(B, K)`` (one per kernel) or ``(B, K, C_out)``.
        in_scale: ``(B, C_in*kh*kw)`` per-sample factor of every kernel's input
            dims (ODConv: channel x spatial attention), or None.
        out_scale: ``(B, C_out)`` per-sample factor of every output channel
            (ODConv: filter attention; scales the mixed bias too), or None.
        stride, padding, dilation: Pairs, as ``F.conv2d``.
        save_memory: With autograd recording: True (default) runs the
            memory-saving autograd function (kernels recomputed in backward);
            False runs the same blocks through plain autograd, which keeps
            every block's kernels for backward (the reference of the tests).
            Without autograd it does not matter.
        block_elements: Override of :data:`BLOCK_ELEMENTS` (exact block sizes,
            no rounding to multiples of 8; for tests).

    Returns:
        ``(B, C_out, H', W')``.
    """
    if (patch is None) == (attn is None):
        raise ValueError('fused_mixture_conv2d needs exactly one of patch (A2D2C attention) '
                         'and attn (given attention)')
    if x.dim() != 4 or bank.dim() != 5 or bank.size(2) != x.size(1):
        raise ValueError(f'fused_mixture_conv2d expects x (B, C_in, H, W) and an ungrouped bank '
                         f'(K, C_out, C_in, kh, kw); got x {tuple(x.shape)} and bank '
                         f'{tuple(bank.shape)}')
    num_k, cout = bank.shape[:2]
    if attn is not None and (attn.size(0) != x.size(0) or attn.size(1) != num_k):
        raise ValueError(f'attention {tuple(attn.shape)} does not match a batch of {x.size(0)} '
                         f'and {num_k} kernels')
    geom = (tuple(stride), tuple(padding), tuple(dilation), tuple(bank.shape[3:]))
    x = x.contiguous()
    attn, in_scale, out_scale = (None if t is None else t.to(bank.dtype)
                                 for t in (attn, in_scale, out_scale))
    args = (x, bank, bias_bank, patch, attn, in_scale, out_scale, float(temperature), geom,
            block_elements)
    if not torch.is_grad_enabled():
        return _forward(*args)
    if save_memory:
        return _FusedMixtureConv.apply(*args)
    return _forward_autograd(*args)


def odconv_mixture_conv2d(x: torch.Tensor, bank: torch.Tensor, kernel_att: torch.Tensor,
                          channel: torch.Tensor, filt, spatial, stride: Sequence[int] = (1, 1),
                          padding: Sequence[int] = (0, 0),
                          dilation: Sequence[int] = (1, 1)) -> torch.Tensor:
    """ODConv's ``filt ⊙ ((spatial ⊙ Σ_k a_k W_k) * (channel ⊙ x))`` (no bias) by
    :func:`fused_mixture_conv2d`: the channel and spatial attentions scale the
    input dims of the per-sample kernel and the filter attention its output
    channels, so neither the scaled input nor the unscaled output is materialised
    (or kept for backward). The same function as the plain ODConv forward.

    Args:
        x: ``(B, C_in, H, W)``.
        bank: ``(K, C_out, C_in, kh, kw)``.
        kernel_att: ``(B, K)``.
        channel: ``(B, C_in)``.
        filt: ``(B, C_out)`` or a float (head skipped).
        spatial: ``(B, kh*kw)`` or a float (head skipped).
        stride, padding, dilation: Pairs, as ``F.conv2d``.
    """
    batch = x.size(0)
    cin, taps = bank.size(2), bank.size(3) * bank.size(4)
    scale = channel.to(bank.dtype).view(batch, cin, 1)
    if isinstance(spatial, torch.Tensor):
        scale = scale * spatial.to(bank.dtype).view(batch, 1, taps)
    else:
        scale = scale.expand(batch, cin, taps)
    return fused_mixture_conv2d(x, bank, attn=kernel_att, in_scale=scale.reshape(batch, -1),
                                out_scale=filt if isinstance(filt, torch.Tensor) else None,
                                stride=stride, padding=padding, dilation=dilation)
