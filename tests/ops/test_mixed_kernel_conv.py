"""mixed_kernel_conv2d: every strategy equals convolving with the materialised
per-sample mixture, for both attention forms, groups, bias and spatial attention."""
import pytest
import torch
import torch.nn.functional as F

from _ops_helpers import TEST_DEVICE
from mmdyn.ops import MIX_STRATEGIES, mix_kernels, mixed_kernel_conv2d

GEOMETRIES = [  # cin, cout, k, stride, padding, dilation, groups
    (4, 6, 3, 1, 1, 1, 1), (4, 6, 3, 2, 0, 1, 2), (6, 6, 3, 1, 2, 2, 6), (4, 8, 1, 1, 0, 1, 1),
    (8, 4, 5, 2, 2, 1, 4),
]


def _expected(x, attn, bank, bias_bank, spatial, geo):
    _, _, k, stride, padding, dilation, groups = geo
    num_k, cout = bank.shape[:2]
    outs = []
    for b in range(x.size(0)):
        a = attn[b].view(num_k, -1)
        a = a.expand(num_k, cout) if a.size(1) == 1 else a
        kernel = (a.view(num_k, cout, 1, 1, 1) * bank).sum(0)
        if spatial is not None:
            kernel = kernel * spatial[b].view(1, 1, k, k)
        bias = None if bias_bank is None else (a * bias_bank).sum(0)
        outs.append(F.conv2d(x[b:b + 1], kernel, bias, stride, padding, dilation, groups))
    return torch.cat(outs)


def _inputs(geo, per_channel, with_bias, with_spatial):
    """Float64 ``(x, attn, bank, bias_bank, spatial)`` for a batch of 3 and K = 4."""
    cin, cout, k, *_, groups = geo
    g = torch.Generator(TEST_DEVICE).manual_seed(0)
    x = torch.randn(3, cin, 9, 8, generator=g, dtype=torch.float64)
    bank = torch.randn(4, cout, cin // groups, k, k, generator=g, dtype=torch.float64)
    attn = torch.rand((3, 4, cout) if per_channel else (3, 4), generator=g,
                      dtype=torch.float64)
    bias_bank = torch.randn(4, cout, generator=g, dtype=torch.float64) if with_bias else None
    spatial = torch.rand(3, k * k, generator=g, dtype=torch.float64) if with_spatial else None
    return x, attn, bank, bias_bank, spatial


@pytest.mark.parametrize('strategy', MIX_STRATEGIES)
@pytest.mark.parametrize('per_channel', [False, True], ids=['attn-BK', 'attn-BKN'])
@pytest.mark.parametrize('with_spatial', [False, True], ids=['', 'spatial'])
@pytest.mark.parametrize('with_bias', [False, True], ids=['', 'bias'])
@pytest.mark.parametrize('geo', GEOMETRIES, ids=lambda g: 'x'.join(map(str, g)))
def test_every_strategy_matches_materialised_mixture(strategy, per_channel, with_spatial,
                                                     with_bias, geo):
    if strategy == 'maps' and with_spatial:
        pytest.skip('maps does not apply with spatial attention (tested below)')
    x, attn, bank, bias_bank, spatial = _inputs(geo, per_channel, with_bias, with_spatial)
    y = mixed_kernel_conv2d(x, attn, bank, bias_bank, spatial, geo[3:4] * 2, geo[4:5] * 2,
                            geo[5:6] * 2, geo[6], strategy)
    torch.testing.assert_close(y, _expected(x, attn, bank, bias_bank, spatial, geo),
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize('per_channel', [False, True], ids=['attn-BK', 'attn-BKN'])
@pytest.mark.parametrize('with_spatial', [False, True], ids=['', 'spatial'])
@pytest.mark.parametrize('with_bias', [False, True], ids=['', 'bias'])
@pytest.mark.parametrize('geo', [(4, 40, 3, 1, 1, 1, 1), (4, 40, 1, 2, 0, 1, 1)],
                         ids=lambda g: 'x'.join(map(str, g)))
def test_loop_in_blocks_matches_materialised_mixture(per_channel, with_spatial, with_bias, geo,
                                                     monkeypatch):
    """The ``loop`` strategy with output-channel blocks smaller than C_out: 40
    channels in blocks of 16 (rounded up from 14), i.e. 16 + 16 + a ragged 8."""
    from mmdyn.ops import batched_conv
    cin, cout, k = geo[:3]
    monkeypatch.setattr(batched_conv, 'LOOP_BLOCK_ELEMENTS', 14 * cin * k * k)
    x, attn, bank, bias_bank, spatial = _inputs(geo, per_channel, with_bias, with_spatial)
    expected = _expected(x, attn, bank, bias_bank, spatial, geo)
    blocks = []  # output channels of every per-sample convolution the loop runs
    conv2d = batched_conv.F.conv2d

    def spy(inp, weight, *args):
        blocks.append(weight.size(0))
        return conv2d(inp, weight, *args)

    monkeypatch.setattr(batched_conv.F, 'conv2d', spy)
    y = mixed_kernel_conv2d(x, attn, bank, bias_bank, spatial, geo[3:4] * 2, geo[4:5] * 2,
                            geo[5:6] * 2, geo[6], 'loop')
    assert blocks == [16] * 3 + [16] * 3 + [8] * 3  # 3 blocks x 3 samples
    torch.testing.assert_close(y, expected, rtol=1e-10, atol=1e-10)


def test_mix_kernels_shapes():
    bank = torch.randn(4, 6, 2, 3, 3)
    kernels, bias = mix_kernels(torch.rand(5, 4), bank, torch.randn(4, 6), torch.rand(5, 9))
    assert kernels.shape == (5, 6, 2, 3, 3) and bias.shape == (5, 6)


@pytest.mark.parametrize('strategy', ['loop', 'maps', 'grouped'])
def test_gradcheck_mixture(strategy):
    g = torch.Generator(TEST_DEVICE).manual_seed(1)
    x = torch.randn(2, 2, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    bank = torch.randn(3, 4, 1, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    attn = torch.rand(2, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda *a: mixed_kernel_conv2d(*a, None, (1, 1), (1, 1), (1, 1), 2, strategy),
        (x, attn, bank, bias))


def test_bad_arguments():
    x, bank = torch.randn(2, 4, 5, 5), torch.randn(3, 4, 4, 3, 3)
    with pytest.raises(ValueError, match="'maps' needs kernels shared over space"):
        mixed_kernel_conv2d(x, torch.rand(2, 3), bank, None, torch.rand(2, 9), strategy='maps')
    with pytest.raises(ValueError, match='does not match a batch of 2 and 3 kernels'):
        mixed_kernel_conv2d(x, torch.rand(2, 4), bank)
    with pytest.raises(ValueError, match="unknown strategy 'fft'"):
        mixed_kernel_conv2d(x, torch.rand(2, 3), bank, strategy='fft')
