"""float64 torch.autograd.gradcheck of every layer and of batched_dynamic_conv2d."""
import pytest
import torch
from torch.autograd import gradcheck
from torch.func import functional_call

from _ops_helpers import STRATEGIES, build
from mmdyn.ops import batched_dynamic_conv2d

# (name, mode, extra kwargs); A2D2C is made deterministic with fixed sampling / eval.
LAYER_CASES = [
    pytest.param('A2D2C', 'train', dict(sampling='fixed', num_points=5, temperature=0.5),
                 id='A2D2C-fast-train-fixed'),
    pytest.param('A2D2C', 'eval', dict(temperature=0.5), id='A2D2C-fast-eval'),
    pytest.param('A2D2C', 'train', dict(sampling='fixed', num_points=5, temperature=0.5,
                                        impl='reference'), id='A2D2C-reference-train-fixed'),
    pytest.param('A2D2CPlus', 'train', dict(sampling='fixed', num_points=5, temperature=0.5,
                                            impl='reference'),
                 id='A2D2CPlus-reference-train-fixed'),
    pytest.param('A2D2CPlus', 'eval', dict(temperature=0.5), id='A2D2CPlus-fast-eval'),
    pytest.param('ODConv', 'eval', dict(temperature=0.5), id='ODConv-eval'),
    pytest.param('ODConv', 'train', dict(temperature=0.5), id='ODConv-train'),
    pytest.param('DyConv', 'eval', dict(temperature=0.5), id='DyConv-eval'),
    pytest.param('CondConv', 'eval', {}, id='CondConv-eval'),
    pytest.param('DCD', 'eval', {}, id='DCD-eval'),
    pytest.param('DCD', 'train', {}, id='DCD-train'),
]

# The attention of a float64 layer is computed in float64, so the Jacobian is
# float64-accurate; test_gradcheck_input_float64_attention additionally recomputes
# the attention outside the layer.


def _layer(name, mode, extra, bias=True):
    torch.manual_seed(0)
    layer = build(name, 2, 3, 3, padding=1, bias=bias, kernel_num=3, **extra).double()
    layer.train(mode == 'train')
    if name == 'DCD':
        with torch.no_grad():  # random BN affine/stats so that every term matters
            for bn in (layer.bn_q, layer.bn_phi):
                bn.weight.uniform_(0.5, 1.5)
                bn.bias.uniform_(-0.5, 0.5)
                bn.running_mean.uniform_(-0.5, 0.5)
                bn.running_var.uniform_(0.5, 1.5)
    return layer


def _input():
    torch.manual_seed(1)
    return torch.randn(2, 2, 5, 5, dtype=torch.float64, requires_grad=True)


@pytest.mark.parametrize('name,mode,extra', LAYER_CASES)
def test_gradcheck_input(name, mode, extra):
    layer = _layer(name, mode, extra, bias=name != 'ODConv')
    assert gradcheck(layer, (_input(),), eps=1e-6, atol=1e-6, rtol=1e-4)


def _float64_attention(layer):
    """The layer's own attention formula without the ``.float()`` downcast."""
    gap = lambda x: x.mean((2, 3))  # noqa: E731
    if layer.__class__.__name__ == 'DynamicConv2d':
        return lambda x: torch.softmax(
            layer.fc2(torch.relu(layer.fc1(gap(x)))) / layer.temperature, dim=1)
    if layer.__class__.__name__ == 'CondConv2d':
        return lambda x: torch.sigmoid(layer.routing(layer.dropout(gap(x))))

    def odconv(x):
        t = layer.temperature
        h = torch.relu(layer.bn(layer.fc(gap(x))))
        return (torch.sigmoid(layer.channel_fc(h) / t), torch.sigmoid(layer.filter_fc(h) / t),
                torch.sigmoid(layer.spatial_fc(h) / t), torch.softmax(layer.kernel_fc(h) / t, 1))

    return odconv


@pytest.mark.parametrize('name,mode,extra', [c for c in LAYER_CASES
                                             if c.values[0] in ('ODConv', 'DyConv', 'CondConv')])
def test_gradcheck_input_float64_attention(name, mode, extra, monkeypatch):
    layer = _layer(name, mode, extra, bias=name != 'ODConv')
    x = _input()
    # same forward values as the layer's own attention, up to float32 round-off
    own = layer.attention(x)
    f64 = _float64_attention(layer)(x)
    for a, b in zip(*((own, f64) if name == 'ODConv' else ((own,), (f64,)))):
        torch.testing.assert_close(a.double(), b, rtol=1e-5, atol=1e-6)
    monkeypatch.setattr(layer, 'attention', _float64_attention(layer))
    assert gradcheck(layer, (x,), eps=1e-6, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize('name,mode,extra', LAYER_CASES)
def test_gradcheck_weight(name, mode, extra):
    layer = _layer(name, mode, extra)
    x = _input().detach()
    params = {'weight': layer.weight.detach().clone().requires_grad_()}
    if layer.bias is not None:
        params['bias'] = layer.bias.detach().clone().requires_grad_()
    keys = list(params)

    def fn(*tensors):
        return functional_call(layer, dict(zip(keys, tensors)), (x,))

    assert gradcheck(fn, tuple(params.values()), eps=1e-6, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize('with_bias', [False, True], ids=['nobias', 'bias'])
@pytest.mark.parametrize('geometry', [
    pytest.param(((1, 1), (1, 1), (1, 1), 1), id='s1-p1'),
    pytest.param(((2, 2), (0, 1), (1, 2), 2), id='s2-p0x1-d1x2-g2'),
])
@pytest.mark.parametrize('strategy', STRATEGIES)
def test_gradcheck_batched_dynamic_conv2d(strategy, geometry, with_bias):
    stride, padding, dilation, groups = geometry
    torch.manual_seed(0)
    x = torch.randn(2, 4, 5, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 4, 4 // groups, 3, 3, dtype=torch.float64, requires_grad=True)
    inputs = (x, w)
    if with_bias:
        inputs += (torch.randn(2, 4, dtype=torch.float64, requires_grad=True),)

    def fn(x, w, b=None):
        return batched_dynamic_conv2d(x, w, b, stride, padding, dilation, groups, strategy)

    assert gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)
