"""Cases where a dynamic convolution must reduce exactly to a static F.conv2d (float64)."""
import pytest
import torch
import torch.nn.functional as F

from _ops_helpers import build

TIGHT = dict(rtol=1e-10, atol=1e-10)

GEOMETRIES = [
    pytest.param(dict(k=3, stride=1, padding=1, dilation=1, groups=1), id='k3-p1'),
    pytest.param(dict(k=3, stride=2, padding=2, dilation=2, groups=2), id='k3-s2-d2-g2'),
    pytest.param(dict(k=1, stride=1, padding=0, dilation=1, groups=4), id='k1-dw'),
]
MODES = ['train', 'eval']


def _make(name, geo, bias, cin=4, cout=4, **kw):
    layer = build(name, cin, cout, geo['k'], geo['stride'], geo['padding'], geo['dilation'],
                  geo['groups'], bias, **kw).double()
    return layer


def _conv(layer, x, weight, bias):
    return F.conv2d(x, weight, bias, layer.stride, layer.padding, layer.dilation, layer.groups)


def _set_mode(layer, mode):
    layer.train(mode == 'train')


def _equalise_bank(layer):
    """Copy kernel 0 (and bias 0) into every kernel of the bank."""
    with torch.no_grad():
        layer.weight.copy_(layer.weight[:1].expand_as(layer.weight))
        if layer.bias is not None:
            layer.bias.copy_(layer.bias[:1].expand_as(layer.bias))


@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('bias', [False, True], ids=['nobias', 'bias'])
@pytest.mark.parametrize('geo', GEOMETRIES)
@pytest.mark.parametrize('impl', ['fast', 'reference'])
@pytest.mark.parametrize('name', ['A2D2C', 'A2D2CPlus'])
def test_a2d2c_equal_kernels_is_static_conv(name, impl, geo, bias, mode):
    torch.manual_seed(0)
    layer = _make(name, geo, bias, kernel_num=4, impl=impl, num_points=5, temperature=0.5)
    _equalise_bank(layer)
    _set_mode(layer, mode)
    x = torch.randn(2, 4, 8, 9, dtype=torch.float64)
    expected = _conv(layer, x, layer.weight[0], None if not bias else layer.bias[0])
    torch.testing.assert_close(layer(x), expected, **TIGHT)


def _float64_dyconv_attention(layer):
    """DynamicConv2d's attention, softmax(fc2(relu(fc1(GAP(x)))) / T), kept in float64."""
    return lambda x: torch.softmax(
        layer.fc2(F.relu(layer.fc1(x.mean((2, 3))))) / layer.temperature, dim=1)


@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('bias', [False, True], ids=['nobias', 'bias'])
@pytest.mark.parametrize('geo', GEOMETRIES)
def test_dynamic_conv_equal_kernels_is_static_conv(geo, bias, mode, monkeypatch):
    """Any softmax mix of K equal kernels (and biases) is that kernel. The attention is
    recomputed in float64 here; the float64-ness of the layer's own attention is checked
    by the next test."""
    torch.manual_seed(0)
    layer = _make('DyConv', geo, bias, kernel_num=4, temperature=0.5)
    _equalise_bank(layer)
    _set_mode(layer, mode)
    x = torch.randn(3, 4, 8, 9, dtype=torch.float64)
    attn = _float64_dyconv_attention(layer)(x)
    assert (attn.max(1).values - attn.min(1).values).min() > 1e-3  # far from uniform
    monkeypatch.setattr(layer, 'attention', _float64_dyconv_attention(layer))
    expected = _conv(layer, x, layer.weight[0], None if not bias else layer.bias[0])
    torch.testing.assert_close(layer(x), expected, **TIGHT)


# The layer's own attention (float64 for a float64 layer) sums to one to float64
# precision, so the reduction holds tightly without recomputing it.
def test_dynamic_conv_equal_kernels_is_static_conv_float64_attention():
    torch.manual_seed(0)
    layer = _make('DyConv', GEOMETRIES[0].values[0], True, kernel_num=4, temperature=0.5)
    _equalise_bank(layer)
    x = torch.randn(3, 4, 8, 9, dtype=torch.float64)
    expected = _conv(layer, x, layer.weight[0], layer.bias[0])
    torch.testing.assert_close(layer(x), expected, **TIGHT)


@pytest.mark.parametrize('bias', [False, True], ids=['nobias', 'bias'])
@pytest.mark.parametrize('geo', GEOMETRIES)
@pytest.mark.parametrize('impl', ['fast', 'reference'])
@pytest.mark.parametrize('name', ['A2D2C', 'A2D2CPlus'])
def test_a2d2c_huge_temperature_is_mean_kernel(name, impl, geo, bias):
    torch.manual_seed(0)
    layer = _make(name, geo, bias, kernel_num=4, impl=impl, num_points=5, temperature=1e12)
    x = torch.randn(2, 4, 8, 9, dtype=torch.float64)
    expected = _conv(layer, x, layer.weight.mean(0), None if not bias else layer.bias.mean(0))
    # sanity: the kernels differ, so a non-uniform attention would be visible
    assert (_conv(layer, x, layer.weight[0], None) - _conv(layer, x, layer.weight.mean(0),
                                                            None)).abs().max() > 1e-3
    for mode in MODES:
        _set_mode(layer, mode)
        torch.testing.assert_close(layer(x), expected, **TIGHT)


def _ones_attention(layer, as_floats):
    """An ODConv ``attention`` replacement returning all-one attentions."""

    def attention(x):
        batch = x.size(0)
        ones = lambda n: torch.ones(batch, n, dtype=x.dtype)  # noqa: E731
        channel = ones(layer.in_channels)
        if as_floats:  # the documented "skipped head" value
            return channel, 1.0, 1.0, 1.0
        return (channel, ones(layer.out_channels), ones(layer.kernel_size[0] *
                                                        layer.kernel_size[1]),
                ones(layer.kernel_num))

    return attention


@pytest.mark.parametrize('as_floats', [False, True], ids=['tensor-ones', 'float-ones'])
@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('bias', [False, True], ids=['nobias', 'bias'])
@pytest.mark.parametrize('geo', GEOMETRIES)
def test_odconv_k1_unit_attention_is_static_conv(geo, bias, mode, as_floats, monkeypatch):
    torch.manual_seed(0)
    layer = _make('ODConv', geo, bias, kernel_num=1)
    _set_mode(layer, mode)
    x = torch.randn(2, 4, 8, 9, dtype=torch.float64)
    expected = _conv(layer, x, layer.weight[0], layer.bias)
    # sanity: the real attention is not all ones
    assert (layer(x) - expected).abs().max() > 1e-3
    monkeypatch.setattr(layer, 'attention', _ones_attention(layer, as_floats))
    torch.testing.assert_close(layer(x), expected, **TIGHT)


@pytest.mark.parametrize('geo', GEOMETRIES)
def test_odconv_one_hot_kernel_attention_selects_kernel(geo, monkeypatch):
    """K=3, per-sample one-hot kernel attention: sample b uses kernel b."""
    torch.manual_seed(0)
    layer = _make('ODConv', geo, True, kernel_num=3).eval()
    x = torch.randn(3, 4, 8, 9, dtype=torch.float64)

    def attention(inp):
        b = inp.size(0)
        return (torch.ones(b, 4, dtype=inp.dtype), torch.ones(b, 4, dtype=inp.dtype),
                torch.ones(b, geo['k'] ** 2, dtype=inp.dtype), torch.eye(3, dtype=inp.dtype))

    monkeypatch.setattr(layer, 'attention', attention)
    y = layer(x)
    for b in range(3):
        torch.testing.assert_close(y[b:b + 1], _conv(layer, x[b:b + 1], layer.weight[b],
                                                     layer.bias), **TIGHT)


@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('bias', [False, True], ids=['nobias', 'bias'])
@pytest.mark.parametrize('geo', GEOMETRIES)
def test_condconv_unit_routing_is_summed_kernels(geo, bias, mode, monkeypatch):
    torch.manual_seed(0)
    layer = _make('CondConv', geo, bias, kernel_num=3)
    _set_mode(layer, mode)
    x = torch.randn(2, 4, 8, 9, dtype=torch.float64)
    monkeypatch.setattr(layer, 'attention',
                        lambda inp: torch.ones(inp.size(0), 3, dtype=inp.dtype))
    expected = _conv(layer, x, layer.weight.sum(0), None if not bias else layer.bias.sum(0))
    torch.testing.assert_close(layer(x), expected, **TIGHT)


@pytest.mark.parametrize('name', ['CondConv', 'DyConv'])
@pytest.mark.parametrize('geo', GEOMETRIES)
def test_one_hot_routing_selects_kernel_per_sample(name, geo, monkeypatch):
    """Sample b routed to kernel (b+1)%K: catches batch/kernel misalignment."""
    torch.manual_seed(0)
    layer = _make(name, geo, True, kernel_num=3)
    x = torch.randn(3, 4, 8, 9, dtype=torch.float64)
    route = torch.eye(3, dtype=torch.float64).roll(1, dims=1)
    monkeypatch.setattr(layer, 'attention', lambda inp: route)
    y = layer(x)
    for b in range(3):
        e = (b + 1) % 3
        torch.testing.assert_close(y[b:b + 1], _conv(layer, x[b:b + 1], layer.weight[e],
                                                     layer.bias[e]), **TIGHT)


def _dcd(geo, bias):
    torch.manual_seed(0)
    layer = _make('DCD', geo, bias, cout=6) if geo['groups'] == 1 else _make('DCD', geo, bias)
    return layer


@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('bias', [False, True], ids=['nobias', 'bias'])
@pytest.mark.parametrize('geo', GEOMETRIES)
def test_dcd_without_dynamic_path_is_static_conv(geo, bias, mode):
    layer = _dcd(geo, bias)
    _set_mode(layer, mode)
    x = torch.randn(2, 4, 8, 9, dtype=torch.float64)
    expected = _conv(layer, x, layer.weight, layer.bias)
    assert (layer(x) - expected).abs().max() > 1e-3  # sanity: the dynamic part matters
    with torch.no_grad():
        layer.fc_scale.weight.zero_()
    _, scale = layer.dynamic_params(x)
    assert torch.equal(scale, torch.ones_like(scale))  # h-sigmoid2(0) == 1 exactly
    with torch.no_grad():
        layer.p.weight.zero_()
    torch.testing.assert_close(layer(x), expected, **TIGHT)


@pytest.mark.parametrize('bias', [False, True], ids=['nobias', 'bias'])
@pytest.mark.parametrize('geo', GEOMETRIES)
def test_dcd_zero_p_is_scaled_static_conv(geo, bias):
    """With P = 0 only the dynamic channel scale λ(x) remains: y = λ ⊙ (W0 * x + b)."""
    layer = _dcd(geo, bias).eval()
    x = torch.randn(2, 4, 8, 9, dtype=torch.float64)
    with torch.no_grad():
        layer.p.weight.zero_()
    _, scale = layer.dynamic_params(x)
    assert not torch.allclose(scale, torch.ones_like(scale))
    assert (scale >= 0).all() and (scale <= 2).all()
    expected = _conv(layer, x, layer.weight, layer.bias) * scale[:, :, None, None]
    torch.testing.assert_close(layer(x), expected, **TIGHT)


@pytest.mark.parametrize('stride', [1, 2])
def test_dcd_matches_decomposition_formula(stride):
    """Independent re-implementation of y = λ(W0*x) + P(BN(Φ·BN(Qx)) + BN(Qx)) for a
    'same'-padded 3x3 conv, where Q is the official strided 1x1 conv."""
    torch.manual_seed(0)
    layer = build('DCD', 9, 5, 3, stride, 1).double()
    x = torch.randn(2, 9, 8, 9, dtype=torch.float64)
    layer.train()
    for _ in range(2):  # move the running statistics away from their defaults
        layer(torch.randn(2, 9, 8, 9, dtype=torch.float64) * 2 + 1)
    layer.eval()
    L = layer.latent_dim
    assert L == 3
    pooled = x.mean((2, 3))
    h = layer.fc(pooled)
    h = h * (F.relu6(layer.fc_gate(h) + 3) / 3)  # official SEModule_small, not halved
    phi = layer.fc_phi(h).view(2, L, L)
    lam = F.relu6(layer.fc_scale(h) + 3) / 3
    q = layer.bn_q(F.conv2d(x, layer.q.weight, stride=stride))
    q = q.flatten(2)
    z = layer.bn_phi(phi @ q) + q
    out_hw = layer.output_size(8, 9)
    dyn = F.conv2d(z.view(2, L, *out_hw), layer.p.weight)
    expected = F.conv2d(x, layer.weight, None, stride, 1) * lam[:, :, None, None] + dyn
    torch.testing.assert_close(layer(x), expected, **TIGHT)


# (kernel, stride, padding, dilation) ; the DCD Q branch reads the centre tap
CENTER_CASES = [
    pytest.param((3, 3), (1, 1), (1, 1), (1, 1), id='k3-same'),
    pytest.param((3, 3), (2, 2), (1, 1), (1, 1), id='k3-s2-same'),
    pytest.param((3, 3), (1, 1), (0, 0), (1, 1), id='k3-p0'),
    pytest.param((3, 3), (2, 2), (3, 3), (1, 1), id='k3-s2-p3'),
    pytest.param((5, 3), (1, 2), (0, 2), (2, 1), id='k5x3-s1x2-p0x2-d2x1'),
    pytest.param((1, 1), (3, 3), (1, 1), (1, 1), id='k1-s3-p1'),
]


@pytest.mark.parametrize('k,s,p,d', CENTER_CASES)
def test_dcd_center_tap_is_unfold_centre(k, s, p, d):
    from mmdyn.ops.dcd_conv2d import center_tap
    torch.manual_seed(0)
    x = torch.randn(2, 3, 9, 10, dtype=torch.float64)
    out_hw = tuple((n + 2 * pp - dd * (kk - 1) - 1) // ss + 1
                   for n, kk, ss, pp, dd in zip((9, 10), k, s, p, d))
    cols = F.unfold(x, k, dilation=d, padding=p, stride=s).view(2, 3, k[0] * k[1], *out_hw)
    centre = ((k[0] - 1) // 2) * k[1] + (k[1] - 1) // 2
    got = center_tap(x, k, s, p, d, out_hw)
    assert got.shape == (2, 3, *out_hw)
    torch.testing.assert_close(got, cols[:, :, centre], rtol=0, atol=0)


# batched_dynamic_conv2d itself: sample b convolved with weight[b] (and bias[b])
BATCHED_CASES = [
    pytest.param(3, 4, 6, 1, (1, 1), (1, 1), (1, 1), id='B3-g1'),
    pytest.param(3, 4, 6, 2, (2, 1), (0, 2), (1, 2), id='B3-g2-asym'),
    pytest.param(2, 4, 4, 4, (2, 2), (1, 1), (1, 1), id='B2-dw-s2'),
    pytest.param(1, 8, 6, 1, (1, 1), (1, 1), (1, 1), id='B1'),
    pytest.param(2, 16, 6, 1, (1, 1), (1, 1), (2, 2), id='B2-c16-d2'),
]


@pytest.mark.parametrize('memory_format', ['contiguous', 'channels_last'])
@pytest.mark.parametrize('with_bias', [False, True], ids=['nobias', 'bias'])
@pytest.mark.parametrize('batch,cin,cout,groups,stride,padding,dilation', BATCHED_CASES)
@pytest.mark.parametrize('strategy', ['grouped', 'loop', 'bmm', 'auto'])
def test_batched_dynamic_conv2d_is_per_sample_conv(strategy, batch, cin, cout, groups, stride,
                                                   padding, dilation, with_bias,
                                                   memory_format):
    from mmdyn.ops import batched_dynamic_conv2d
    torch.manual_seed(0)
    x = torch.randn(batch, cin, 7, 9, dtype=torch.float64)
    if memory_format == 'channels_last':
        x = x.contiguous(memory_format=torch.channels_last)
    w = torch.randn(batch, cout, cin // groups, 3, 3, dtype=torch.float64)
    b = torch.randn(batch, cout, dtype=torch.float64) if with_bias else None
    y = batched_dynamic_conv2d(x, w, b, stride, padding, dilation, groups, strategy)
    for i in range(batch):
        expected = F.conv2d(x[i:i + 1], w[i], None if b is None else b[i], stride, padding,
                            dilation, groups)
        torch.testing.assert_close(y[i:i + 1], expected, **TIGHT)
    if memory_format == 'channels_last' and batch > 1:
        assert y.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize('strategy', ['grouped', 'loop', 'bmm'])
def test_batched_dynamic_conv2d_expanded_weight(strategy):
    """An expanded (stride-0) kernel, as ODConv passes for K=1, is the static conv."""
    from mmdyn.ops import batched_dynamic_conv2d
    torch.manual_seed(0)
    x = torch.randn(3, 4, 6, 7, dtype=torch.float64)
    w0 = torch.randn(5, 4, 3, 3, dtype=torch.float64)
    y = batched_dynamic_conv2d(x, w0.expand(3, -1, -1, -1, -1), None, (1, 1), (1, 1), (1, 1),
                               1, strategy)
    torch.testing.assert_close(y, F.conv2d(x, w0, None, 1, 1), **TIGHT)
