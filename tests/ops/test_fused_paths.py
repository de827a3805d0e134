"""The fused one-pass paths (mmdyn/ops/fused_attention.py): exactness against the paper's
reference and against the plain paths, float64 gradcheck, the memory-saving backward
against plain autograd, what it keeps for backward, and when ``strategy='auto'`` uses it.

All tensors are on the CPU: the fused path is a CPU path."""
import pytest
import torch
from torch.autograd import gradcheck

from _ops_helpers import scale_tol, seeded
from mmdyn.ops import A2D2CConv2d, A2D2CPlusConv2d, ODConv2d, batched_conv
from mmdyn.ops import fused_attention as fa

# (C_in, C_out, kernel, stride, padding, dilation, bias, input size)
GEOMETRIES = [
    pytest.param((6, 20, 1, 1, 0, 1, True, 7), id='k1-pointwise-bias'),
    pytest.param((6, 20, 1, 1, 0, 1, False, 7), id='k1-pointwise'),
    pytest.param((6, 20, 3, 1, 1, 1, False, 8), id='k3-p1'),
    pytest.param((6, 20, 3, 2, 1, 1, True, 9), id='k3-s2-bias'),
    pytest.param((6, 20, 3, 1, 2, 2, True, 8), id='k3-d2-bias'),
    pytest.param((6, 20, 1, 2, 0, 1, True, 9), id='k1-s2-bias'),
    pytest.param((6, 20, (3, 1), (2, 1), (1, 0), 1, False, 8), id='k3x1-s2x1'),
]
SMALL_BLOCKS = 6 * 9 * 4 * 3  # a few channels per block / samples per chunk


def _small_blocks(monkeypatch):
    """A few channels per block and (batch > K) a few samples per chunk."""
    monkeypatch.setattr(fa, 'BLOCK_ELEMENTS', SMALL_BLOCKS)
    monkeypatch.setattr(fa, 'MIN_BLOCK_CHANNELS', 1)


@pytest.fixture
def fused_calls(monkeypatch):
    """Count the calls of the fused routine (to make sure a test exercises it)."""
    calls = []
    original = fa.fused_mixture_conv2d

    def spy(*args, **kwargs):
        calls.append(kwargs.get('patch') is not None)
        return original(*args, **kwargs)

    import mmdyn.ops.a2d2c_conv2d as a2d2c_module
    monkeypatch.setattr(fa, 'fused_mixture_conv2d', spy)
    monkeypatch.setattr(a2d2c_module, 'fused_mixture_conv2d', spy)
    return calls


def _a2d2c_pair(cls, geo, seed=0, **kw):
    cin, cout, k, s, p, d, bias, size = geo
    torch.manual_seed(seed)
    ref = cls(cin, cout, k, s, p, d, 1, bias, kernel_num=3, num_points=5, temperature=0.5,
              impl='reference', **kw)
    fast = cls(cin, cout, k, s, p, d, 1, bias, kernel_num=3, num_points=5, temperature=0.5,
               **kw)
    fast.load_state_dict(ref.state_dict())
    return ref, fast, size


# ------------------------------------------------------ exactness against the reference
@pytest.mark.parametrize('blocks', ['one-block', 'many-blocks'])
@pytest.mark.parametrize('mode', ['train-random', 'train-fixed', 'eval'])
@pytest.mark.parametrize('batch', [1, 5])  # 5 > K: chunks of samples with many-blocks
@pytest.mark.parametrize('geo', GEOMETRIES)
@pytest.mark.parametrize('cls', [A2D2CConv2d, A2D2CPlusConv2d], ids=['A2D2C', 'A2D2CPlus'])
def test_fused_a2d2c_equals_reference(cls, geo, batch, mode, blocks, fused_calls, monkeypatch):
    """Same sampled points (same seed), output and every gradient within 1e-5 relative."""
    if blocks == 'many-blocks':
        _small_blocks(monkeypatch)
        monkeypatch.setattr(fa, 'PER_SAMPLE_MIX_MIN_ROW', 1)  # the long-row code path
    sampling = 'random' if mode == 'eval' else mode.split('-')[1]
    ref, fast, size = _a2d2c_pair(cls, geo, sampling=sampling)
    ref.train(mode != 'eval')
    fast.train(mode != 'eval')
    torch.manual_seed(1)
    x = torch.randn(batch, geo[0], size, size, requires_grad=True)
    y_ref = seeded(2, ref, x)
    y_fast = seeded(2, fast, x)
    assert fused_calls == [True]
    torch.testing.assert_close(y_fast, y_ref, **scale_tol(y_ref))
    grad_out = torch.randn_like(y_ref)
    params_ref = [x] + list(ref.parameters())
    params_fast = [x] + list(fast.parameters())
    for g_fast, g_ref in zip(torch.autograd.grad(y_fast, params_fast, grad_out),
                             torch.autograd.grad(y_ref, params_ref, grad_out)):
        torch.testing.assert_close(g_fast, g_ref, **scale_tol(g_ref))


def test_fused_blocks_are_really_several(monkeypatch):
    """What the layer tests with _small_blocks run: several blocks and chunks."""
    _small_blocks(monkeypatch)
    for per_channel in (6, 6 * 9, 6 * 3):  # 1x1, 3x3, 3x1 kernels of the geometries
        for num_k in (1, 3):
            blocks, chunks = fa.partition(20, per_channel, 5, num_k)
            assert len(blocks) > 1 or len(chunks) > 1
    blocks, chunks = fa.partition(20, 6 * 9, 5, 3)
    assert len(blocks) > 2 and len(chunks) > 1
    for parts, total in ((blocks, 20), (chunks, 5)):
        assert parts[0][0] == 0 and parts[-1][1] == total
        assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))


@pytest.mark.parametrize('cout,per_channel,batch,budget,blocks,chunks', [
    (64, 576, 8, None, [(0, 64)], [(0, 8)]),                   # everything fits
    (512, 4608, 8, None, [(0, 128), (128, 256), (256, 384), (384, 512)],
     [(0, 3), (3, 6), (6, 8)]),                                # at least 128 channels
    (512, 4608, 32, None, [(0, 128), (128, 256), (256, 384), (384, 512)],
     [(s, min(32, s + 3)) for s in range(0, 32, 3)]),          # a large batch: chunks
    (500, 1152, 8, None, [(0, 256), (256, 500)], [(0, 8)]),    # 250 -> multiple of 8
    (64, 73728, 2, None, [(0, 64)], [(0, 1), (1, 2)]),         # fewer channels than that
    (512, 4608, 1, None, [(0, 176), (176, 352), (352, 512)], [(0, 1)]),  # batch 1
    (10, 1, 12, 20, [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)],
     [(0, 6), (6, 12)]),                                       # exact budget (tests)
])
def test_partition(cout, per_channel, batch, budget, blocks, chunks, monkeypatch):
    monkeypatch.setattr(fa, 'BLOCK_ELEMENTS', 1 << 22)
    assert fa.partition(cout, per_channel, batch, 4, budget) == (blocks, chunks)


# ------------------------------------------------------------ ODConv against its plain path
@pytest.mark.parametrize('mode', ['train', 'eval'])
@pytest.mark.parametrize('geo', GEOMETRIES)
@pytest.mark.parametrize('kernel_num', [1, 3])
def test_fused_odconv_equals_plain_path(geo, kernel_num, mode, monkeypatch):
    cin, cout, k, s, p, d, bias, size = geo
    _small_blocks(monkeypatch)
    torch.manual_seed(0)
    layer = ODConv2d(cin, cout, k, s, p, d, 1, bias, kernel_num=kernel_num,
                     temperature=0.7).train(mode == 'train')
    x = torch.randn(5, cin, size, size, requires_grad=True)  # 5 > K: chunks of samples
    results = []
    for enabled in (True, False):
        monkeypatch.setattr(fa, 'ENABLED', enabled)
        assert fa.use_fused(x, layer.weight, 1) is enabled
        y = layer(x)
        torch.manual_seed(3)
        grads = torch.autograd.grad(y, [x] + list(layer.parameters()), torch.randn_like(y),
                                    allow_unused=True)
        results.append((y, grads))
    (y_fused, g_fused), (y_plain, g_plain) = results
    torch.testing.assert_close(y_fused, y_plain, **scale_tol(y_plain))
    for a, b in zip(g_fused, g_plain):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, **scale_tol(b))


@pytest.mark.parametrize('mode', ['train', 'eval'])
@pytest.mark.parametrize('geo', [GEOMETRIES[0], GEOMETRIES[3], GEOMETRIES[4]])
@pytest.mark.parametrize('name', ['DyConv', 'CondConv'])
def test_fused_mixture_layers_equal_plain_path(name, geo, mode, monkeypatch):
    """DynamicConv / CondConv reach the fused routine through mixed_kernel_conv2d."""
    from mmdyn.ops import LAYERS
    cin, cout, k, s, p, d, bias, size = geo
    _small_blocks(monkeypatch)
    torch.manual_seed(0)
    layer = LAYERS[name](cin, cout, k, s, p, d, 1, bias, kernel_num=3).train(mode == 'train')
    x = torch.randn(5, cin, size, size, requires_grad=True)  # 5 > K: chunks of samples
    results = []
    for enabled in (True, False):
        monkeypatch.setattr(fa, 'ENABLED', enabled)
        y = layer(x)
        torch.manual_seed(3)
        grads = torch.autograd.grad(y, [x] + list(layer.parameters()), torch.randn_like(y))
        results.append((y, grads))
    (y_fused, g_fused), (y_plain, g_plain) = results
    torch.testing.assert_close(y_fused, y_plain, **scale_tol(y_plain))
    for a, b in zip(g_fused, g_plain):
        torch.testing.assert_close(a, b, **scale_tol(b))


def test_mixed_kernel_conv2d_with_spatial_attention_fuses(monkeypatch):
    """A spatial attention (B, kh*kw) becomes the kernels' input-dims scale."""
    from mmdyn.ops import mixed_kernel_conv2d
    torch.manual_seed(0)
    x = torch.randn(2, 4, 6, 6, requires_grad=True)
    bank = torch.randn(3, 5, 4, 3, 3, requires_grad=True)
    attn, spatial = torch.rand(2, 3), torch.rand(2, 9)
    outs = []
    for enabled in (True, False):
        monkeypatch.setattr(fa, 'ENABLED', enabled)
        y = mixed_kernel_conv2d(x, attn, bank, None, spatial, (1, 1), (1, 1), (1, 1), 1)
        outs.append((y, torch.autograd.grad(y.square().sum(), (x, bank))))
    torch.testing.assert_close(outs[0][0], outs[1][0], **scale_tol(outs[1][0]))
    for a, b in zip(outs[0][1], outs[1][1]):
        torch.testing.assert_close(a, b, **scale_tol(b))


# ---------------------------------------------- float64 gradcheck and memory-saving backward
def _inputs(geo, mode, seed=0):
    """float64 arguments of fused_mixture_conv2d for one case."""
    cin, cout, k, s, p, d, bias, size = geo
    kh, kw = (k, k) if isinstance(k, int) else k
    pair = (lambda v: (v, v) if isinstance(v, int) else tuple(v))
    g = torch.Generator().manual_seed(seed)
    f64 = dict(dtype=torch.float64, generator=g)
    num_k, batch = 3, 4  # batch > K: several chunks of samples with small budgets
    tensors = dict(x=torch.randn(batch, cin, size, size, **f64),
                   bank=torch.randn(num_k, cout, cin, kh, kw, **f64),
                   bias_bank=torch.randn(num_k, cout, **f64) if bias else None)
    if mode == 'patch':
        tensors['patch'] = torch.randn(batch, cin * kh * kw, **f64)
    else:
        shape = (batch, num_k) if mode == 'attn-kernel' else (batch, num_k, cout)
        tensors['attn'] = torch.rand(shape, **f64)
        tensors['in_scale'] = torch.rand(batch, cin * kh * kw, **f64) + 0.5
        tensors['out_scale'] = torch.rand(batch, cout, **f64) + 0.5
    for t in tensors.values():
        if t is not None:
            t.requires_grad_(True)
    geometry = dict(stride=pair(s), padding=pair(p), dilation=pair(d))
    return tensors, geometry


MODES = ['patch', 'attn-kernel', 'attn-channel']


def _set_rows(rows, monkeypatch):
    """Both mixing / bank-gradient code paths of fused_attention: per-channel bmm for
    short kernel rows, per-sample products and addcmul_ for long ones."""
    monkeypatch.setattr(fa, 'PER_SAMPLE_MIX_MIN_ROW', 1 if rows == 'per-sample-rows' else 10**9)
# tiny (numerical Jacobians), still several blocks of output channels
GRADCHECK_GEOMETRIES = [
    pytest.param((2, 5, 1, 1, 0, 1, True, 4), id='k1-pointwise-bias'),
    pytest.param((2, 5, 3, 2, 1, 1, True, 5), id='k3-s2-bias'),
    pytest.param((2, 5, 3, 1, 2, 2, False, 4), id='k3-d2'),
    pytest.param((2, 5, (3, 1), (2, 1), (1, 0), 1, False, 4), id='k3x1-s2x1'),
]


@pytest.mark.parametrize('rows', ['bmm-rows', 'per-sample-rows'])
@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('geo', GRADCHECK_GEOMETRIES)
def test_fused_gradcheck_float64(geo, mode, rows, monkeypatch):
    _set_rows(rows, monkeypatch)
    tensors, geometry = _inputs(geo, mode)
    names = [n for n, t in tensors.items() if t is not None]
    per_channel = tensors['bank'][0, 0].numel()
    blocks, chunks = fa.partition(5, per_channel, 4, 3, 6 * per_channel)
    assert len(blocks) == 5 and chunks == [(0, 2), (2, 4)]

    def fn(*args):
        kwargs = dict(zip(names, args))
        x, bank = kwargs.pop('x'), kwargs.pop('bank')
        return fa.fused_mixture_conv2d(x, bank, kwargs.pop('bias_bank', None), temperature=0.7,
                                       block_elements=6 * per_channel, **kwargs,
                                       **geometry)

    assert gradcheck(fn, tuple(tensors[n] for n in names), eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize('rows', ['bmm-rows', 'per-sample-rows'])
@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('geo', GEOMETRIES)
def test_memory_saving_backward_equals_plain_backward(geo, mode, rows, monkeypatch):
    """The recomputing autograd Function gives the gradients of plain autograd through
    the same blocks (which stores every kernel), for every input."""
    _set_rows(rows, monkeypatch)
    tensors, geometry = _inputs(geo, mode, seed=1)
    names = [n for n, t in tensors.items() if t is not None]
    kwargs = {n: tensors[n] for n in names if n not in ('x', 'bank', 'bias_bank')}
    outs, grads = [], []
    for save_memory in (True, False):
        y = fa.fused_mixture_conv2d(tensors['x'], tensors['bank'], tensors['bias_bank'],
                                    temperature=0.7, block_elements=SMALL_BLOCKS,
                                    save_memory=save_memory, **kwargs, **geometry)
        grad_out = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)
        outs.append(y)
        grads.append(torch.autograd.grad(y, [tensors[n] for n in names], grad_out))
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-12, atol=1e-12)
    for name, a, b in zip(names, *grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10, msg=f'gradient of {name}')


def _saved_bytes(fn):
    """Bytes of the tensors autograd keeps for backward while ``fn`` runs (every
    saved tensor counted once per storage)."""
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return sum(storages.values()), out


def test_memory_saving_backward_keeps_no_kernel():
    """What the fused Function keeps for backward is its inputs; plain autograd through
    the same blocks keeps the B per-sample kernels on top (several times more here)."""
    torch.manual_seed(0)
    x = torch.randn(4, 64, 6, 6, requires_grad=True)
    bank = torch.randn(4, 64, 64, 3, 3, requires_grad=True)
    patch = torch.randn(4, 64 * 9, requires_grad=True)
    kernels = 4 * 64 * 64 * 9 * 4                                   # B kernels, float32
    fused, y1 = _saved_bytes(lambda: fa.fused_mixture_conv2d(x, bank, patch=patch,
                                                             padding=(1, 1)))
    plain, y2 = _saved_bytes(lambda: fa.fused_mixture_conv2d(x, bank, patch=patch,
                                                             padding=(1, 1), save_memory=False))
    torch.testing.assert_close(y1, y2)
    inputs = sum(t.numel() * 4 for t in (x, bank, patch))
    assert fused <= inputs
    assert plain >= fused + kernels


# --------------------------------------------------------------------- when auto fuses
def _layer_and_input():
    torch.manual_seed(0)
    return A2D2CPlusConv2d(4, 8, 3, padding=1, kernel_num=2), torch.randn(2, 4, 6, 6)


def test_auto_uses_fused_path_on_cpu(fused_calls):
    layer, x = _layer_and_input()
    assert fa.use_fused(x, layer.weight, 1)
    layer(x)
    assert fused_calls == [True]


@pytest.mark.parametrize('case', ['disabled', 'forced-strategy', 'explicit-strategy', 'grouped',
                                  'channels-last', 'float64-input-float32-bank', 'autocast',
                                  'trace', 'tiny-map'])
def test_auto_keeps_plain_paths(case, fused_calls, monkeypatch):
    """The fused path is not taken where it does not apply or must not be used
    (tracing/export keeps the strategies whose ops a tracer records)."""
    layer, x = _layer_and_input()
    if case == 'disabled':
        monkeypatch.setattr(fa, 'ENABLED', False)
    elif case == 'forced-strategy':
        monkeypatch.setattr(batched_conv, 'FORCED_STRATEGY', 'loop')
    elif case == 'explicit-strategy':
        layer = A2D2CPlusConv2d(4, 8, 3, padding=1, kernel_num=2, strategy='loop')
    elif case == 'grouped':
        layer = A2D2CPlusConv2d(4, 8, 3, padding=1, kernel_num=2, groups=2)
    elif case == 'channels-last':
        x = x.contiguous(memory_format=torch.channels_last)
    elif case == 'tiny-map':  # 4x4 < MIN_POSITIONS: K convolutions are cheaper
        x = torch.randn(2, 4, 4, 4)
        assert not fa.use_fused(x, layer.weight, 1, (4, 4))
    elif case == 'float64-input-float32-bank':
        x = x.double()
        assert not fa.use_fused(x, layer.weight, 1)
        return
    if case == 'autocast':
        with torch.autocast('cpu', dtype=torch.bfloat16):
            assert not fa.use_fused(x, layer.weight, 1)
            layer(x)
    elif case == 'trace':
        traced = torch.jit.trace(layer.eval(), x, check_trace=False)  # no eager re-run
        assert fused_calls == []
        y = layer(x)
        assert fused_calls == [True]  # the eager call after tracing fuses again
        torch.testing.assert_close(traced(x), y, **scale_tol(y))
        return
    else:
        layer(x)
    assert fused_calls == []


def test_fused_mixture_conv2d_errors():
    x = torch.randn(2, 4, 5, 5)
    bank = torch.randn(3, 6, 4, 3, 3)
    with pytest.raises(ValueError, match='exactly one of patch'):
        fa.fused_mixture_conv2d(x, bank)
    with pytest.raises(ValueError, match='exactly one of patch'):
        fa.fused_mixture_conv2d(x, bank, patch=torch.randn(2, 36), attn=torch.rand(2, 3))
    with pytest.raises(ValueError, match='ungrouped bank'):
        fa.fused_mixture_conv2d(x, torch.randn(3, 6, 2, 3, 3), attn=torch.rand(2, 3))
    with pytest.raises(ValueError, match='does not match a batch of 2 and 3 kernels'):
        fa.fused_mixture_conv2d(x, bank, attn=torch.rand(2, 4))
