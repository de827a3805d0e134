"""Every mmdyn layer against nn.Conv2d: output shapes, finiteness, gradients, and the
nn.Conv2d attributes that mmcv's ConvModule and model surgery read."""
import itertools

import pytest
import torch
import torch.nn as nn

from _ops_helpers import LAYER_NAMES, build, kernel_of
from mmdyn.ops import LAYERS

H, W = 9, 11  # non-square so that a swapped H/W shows


def _channels(groups):
    """(C_in, C_out, groups) for a groups label."""
    return {'g1': (4, 6, 1), 'g2': (4, 6, 2), 'dw': (4, 4, 4)}[groups]


def _cases():
    """Full product of kernel x stride x dilation x groups per layer (36 each); bias,
    K, padding (and impl for A2D2C) are cycled so that every value meets every kernel
    size and groups setting without multiplying the count."""
    cases = []
    for name in LAYER_NAMES:
        for i, (k, s, d, g) in enumerate(
                itertools.product((1, 3, 5), (1, 2), (1, 2), ('g1', 'g2', 'dw'))):
            bias = i % 2 == 0
            kernel_num = (1, 4)[(i // 2) % 2] if LAYERS[name].has_kernel_bank else None
            padding = (0, (k // 2) * d, 1)[i % 3]
            extra = {}
            if name.startswith('A2D2C'):
                extra = dict(impl=('fast', 'reference')[(i // 4) % 2], num_points=5,
                             temperature=1.0)
            ident = (f'{name}-k{k}-s{s}-d{d}-{g}-p{padding}-{"bias" if bias else "nobias"}'
                     + ('' if kernel_num is None else f'-K{kernel_num}')
                     + (f'-{extra["impl"]}' if extra else ''))
            cases.append(pytest.param(name, k, s, d, g, padding, bias, kernel_num, extra,
                                      id=ident))
    return cases


@pytest.mark.parametrize('name,k,stride,dilation,groups,padding,bias,kernel_num,extra',
                         _cases())
def test_matches_conv2d_shape_and_backward(name, k, stride, dilation, groups, padding,
                                           bias, kernel_num, extra):
    cin, cout, g = _channels(groups)
    torch.manual_seed(0)
    layer = build(name, cin, cout, k, stride, padding, dilation, g, bias, kernel_num, **extra)
    conv = nn.Conv2d(cin, cout, k, stride, padding, dilation, g, bias)
    x = torch.randn(2, cin, H, W, requires_grad=True)

    y = layer(x)
    assert y.shape == conv(x).shape
    assert torch.isfinite(y).all()

    (y * torch.randn_like(y)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    params = dict(layer.named_parameters())
    assert params, 'layer has no parameters'
    for pname, p in params.items():
        assert p.grad is not None, f'{pname} got no gradient'
        assert torch.isfinite(p.grad).all(), f'{pname} has a non-finite gradient'
    assert kernel_of(layer).grad.abs().sum() > 0
    if bias:
        assert layer.bias is not None and layer.bias.grad.abs().sum() > 0
    else:
        assert layer.bias is None

    if name == 'ODConv':
        # heads that do not apply are not built
        assert (layer.filter_fc is None) == (groups == 'dw')
        assert (layer.spatial_fc is None) == (k == 1)
        assert (layer.kernel_fc is None) == (kernel_num == 1)
    if LAYERS[name].has_kernel_bank:
        assert layer.weight.shape == (kernel_num, cout, cin // g, k, k)
    elif hasattr(layer, 'weight'):
        assert layer.weight.shape == conv.weight.shape
    else:  # no stored kernel: one assembled per sample (KernelWarehouse)
        assert layer.kernels(x).shape == (x.size(0), *conv.weight.shape)

    layer.eval()
    with torch.no_grad():
        y_eval = layer(x)
    assert y_eval.shape == y.shape and torch.isfinite(y_eval).all()


ATTR_CONFIGS = [
    pytest.param(dict(kernel_size=3, stride=1, padding=1, dilation=1, groups=1), id='ints'),
    pytest.param(dict(kernel_size=(3, 1), stride=(2, 1), padding=(1, 0), dilation=(1, 2),
                      groups=2), id='pairs-g2'),
    pytest.param(dict(kernel_size=[5, 3], stride=[1, 2], padding=[2, 1], dilation=1,
                      groups=1), id='lists'),
]


@pytest.mark.parametrize('cfg', ATTR_CONFIGS)
@pytest.mark.parametrize('name', LAYER_NAMES)
def test_conv2d_attributes(name, cfg):
    layer = build(name, 4, 6, **cfg)
    conv = nn.Conv2d(4, 6, **cfg)
    for attr in ('in_channels', 'out_channels', 'kernel_size', 'stride', 'padding',
                 'dilation', 'groups', 'transposed', 'output_padding', 'padding_mode'):
        assert getattr(layer, attr) == getattr(conv, attr), attr
    for attr in ('kernel_size', 'stride', 'padding', 'dilation', 'output_padding'):
        assert isinstance(getattr(layer, attr), tuple), attr
    assert layer.transposed is False and layer.output_padding == (0, 0)
    x = torch.randn(2, 4, 8, 10)
    assert layer(x).shape == conv(x).shape


SAME_CONFIGS = [
    pytest.param(3, 1, (1, 1), id='k3'),
    pytest.param(3, 2, (2, 2), id='k3-d2'),
    pytest.param(5, 1, (2, 2), id='k5'),
    pytest.param(1, 1, (0, 0), id='k1'),
    pytest.param((3, 5), (1, 2), (1, 4), id='k3x5-d1x2'),
]


@pytest.mark.parametrize('k,dilation,expected', SAME_CONFIGS)
@pytest.mark.parametrize('name', LAYER_NAMES)
def test_padding_same(name, k, dilation, expected):
    layer = build(name, 4, 6, k, padding='same', dilation=dilation)
    conv = nn.Conv2d(4, 6, k, padding='same', dilation=dilation)
    assert layer.padding == expected
    x = torch.randn(2, 4, 9, 11)
    y = layer(x)
    assert y.shape == conv(x).shape == (2, 6, 9, 11)


@pytest.mark.parametrize('name', LAYER_NAMES)
def test_padding_valid(name):
    layer = build(name, 4, 6, 3, stride=2, padding='valid')
    conv = nn.Conv2d(4, 6, 3, stride=2, padding='valid')
    assert layer.padding == (0, 0)
    x = torch.randn(2, 4, 9, 12)
    assert layer(x).shape == conv(x).shape == (2, 6, 4, 5)
