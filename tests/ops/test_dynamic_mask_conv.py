"""DynamicMaskConv2d (DMC): shapes vs nn.Conv2d, an independent per-branch reference,
exact reductions, masks, gradcheck, errors and the behaviour a network needs."""
import itertools
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd import gradcheck

from _ops_helpers import TEST_DEVICE, scale_tol
from mmdyn.ops import MODULES, DynamicMaskConv2d, dynamic_mask_conv2d

MASKS = ['spatial', 'channel', 'none']
FUSIONS = ['conv1x1', 'sum']
OPTIONS = list(itertools.product(MASKS, FUSIONS))
OPTION_IDS = [f'{m}-{f}' for m, f in OPTIONS]
TIGHT = dict(rtol=1e-10, atol=1e-10)


def _dmc(cin=4, cout=6, k=3, seed=0, dtype=torch.float32, **kw):
    torch.manual_seed(seed)
    return DynamicMaskConv2d(cin, cout, k, **kw).to(dtype)


def _reference(layer, x):
    """DMC recomputed branch by branch with separate nn.Conv2d modules (float64)."""
    k = layer.kernel_size
    outs = []
    for i, r in enumerate(layer.branch_dilations):
        d = (layer.dilation[0] * r, layer.dilation[1] * r)
        conv = nn.Conv2d(layer.in_channels, layer.out_channels, k, layer.stride,
                         (d[0] * (k[0] - 1) // 2, d[1] * (k[1] - 1) // 2), d, layer.groups,
                         bias=layer.bias is not None).to(x.dtype)
        with torch.no_grad():
            conv.weight.copy_(layer.weight[i])
            if layer.bias is not None:
                conv.bias.copy_(layer.bias[i])
        y = conv(x)
        if layer.mask == 'spatial':
            m = layer.mask_kernel_size
            mask_conv = nn.Conv2d(layer.out_channels, 1, m, padding=m // 2).to(x.dtype)
            with torch.no_grad():
                mask_conv.weight.copy_(layer.mask_weight[i:i + 1])
                mask_conv.bias.copy_(layer.mask_bias[i:i + 1])
            y = y * torch.sigmoid(mask_conv(y))
        elif layer.mask == 'channel':
            fc = nn.Linear(layer.out_channels, layer.out_channels).to(x.dtype)
            with torch.no_grad():
                fc.weight.copy_(layer.mask_weight[i])
                fc.bias.copy_(layer.mask_bias[i])
            y = y * torch.sigmoid(fc(y.mean((2, 3))))[:, :, None, None]
        outs.append(y)
    if layer.fusion == 'sum':
        return sum(outs)
    fuse = nn.Conv2d(len(outs) * layer.out_channels, layer.out_channels, 1,
                     bias=layer.fusion_bias is not None).to(x.dtype)
    with torch.no_grad():
        fuse.weight.copy_(layer.fusion_weight)
        if layer.fusion_bias is not None:
            fuse.bias.copy_(layer.fusion_bias)
    return fuse(torch.cat(outs, 1))


# ------------------------------------------------------------------ shapes
def _shape_cases():
    cases = []
    for i, (k, s, d, g) in enumerate(itertools.product((1, 3, 5), (1, 2), (1, 2), (1, 2))):
        mask, fusion = OPTIONS[i % len(OPTIONS)]
        batch = 1 if i % 4 == 0 else 2
        cases.append(pytest.param(k, s, d, g, mask, fusion, batch,
                                  id=f'k{k}-s{s}-d{d}-g{g}-{mask}-{fusion}-b{batch}'))
    return cases


@pytest.mark.parametrize('k,stride,dilation,groups,mask,fusion,batch', _shape_cases())
def test_shape_matches_conv2d(k, stride, dilation, groups, mask, fusion, batch):
    layer = _dmc(4, 6, k, stride=stride, dilation=dilation, groups=groups, mask=mask,
                 fusion=fusion, bias=batch == 2)
    conv = nn.Conv2d(4, 6, k, stride, dilation * (k - 1) // 2, dilation, groups)
    x = torch.randn(batch, 4, 9, 11, requires_grad=True)
    y = layer(x)
    assert y.shape == conv(x).shape
    assert layer.padding == conv.padding and layer.output_size(9, 11) == y.shape[2:]
    y.square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in layer.parameters())


def test_rectangular_kernel_pads_each_dim():
    layer = _dmc(3, 5, (3, 5), dilation=(1, 2), branch_dilations=(1, 2))
    assert layer.padding == (1, 4)
    assert layer.effective_dilations == [(1, 2), (2, 4)]
    x = torch.randn(2, 3, 10, 13)
    assert layer(x).shape == nn.Conv2d(3, 5, (3, 5), 1, (1, 4), (1, 2))(x).shape


# ------------------------------------------------------------------ maths
@pytest.mark.parametrize('mask,fusion', OPTIONS, ids=OPTION_IDS)
@pytest.mark.parametrize('geo', [dict(), dict(stride=2, dilation=2, groups=2, bias=True)],
                         ids=['plain', 's2-d2-g2-bias'])
def test_matches_per_branch_reference(mask, fusion, geo):
    layer = _dmc(4, 6, 3, dtype=torch.float64, mask=mask, fusion=fusion, **geo)
    x = torch.randn(2, 4, 9, 8, dtype=torch.float64)
    torch.testing.assert_close(layer(x), _reference(layer, x), **TIGHT)


@pytest.mark.parametrize('bias', [False, True], ids=['nobias', 'bias'])
@pytest.mark.parametrize('geo', [dict(k=3), dict(k=3, stride=2, dilation=2, groups=2),
                                 dict(k=5, dilation=3), dict(k=1, groups=4)],
                         ids=['k3', 'k3-s2-d2-g2', 'k5-d3', 'k1-dw'])
def test_one_branch_no_mask_sum_is_conv2d(geo, bias):
    geo = dict(geo)  # the parametrised dict is shared between the bias cases
    k = geo.pop('k')
    layer = _dmc(4, 4, k, dtype=torch.float64, branch_dilations=(1, ), mask='none',
                 fusion='sum', bias=bias, **geo)
    d = geo.get('dilation', 1)
    conv = nn.Conv2d(4, 4, k, geo.get('stride', 1), d * (k - 1) // 2, d, geo.get('groups', 1),
                     bias=bias).double()
    with torch.no_grad():
        conv.weight.copy_(layer.weight[0])
        if bias:
            conv.bias.copy_(layer.bias[0])
    x = torch.randn(2, 4, 9, 10, dtype=torch.float64)
    torch.testing.assert_close(layer(x), conv(x), **TIGHT)


@pytest.mark.parametrize('mask', ['spatial', 'channel'])
def test_zero_mask_layer_halves_sum_of_dilated_convs(mask):
    """Mask logits 0 -> sigmoid = 0.5 everywhere: out = 0.5 * sum_i conv(x, W_i, d*r_i)."""
    layer = _dmc(4, 6, 3, dtype=torch.float64, dilation=2, branch_dilations=(1, 3),
                 mask=mask, fusion='sum')
    with torch.no_grad():
        layer.mask_weight.zero_()
        layer.mask_bias.zero_()
    x = torch.randn(2, 4, 13, 12, dtype=torch.float64)
    expected = 0.5 * (F.conv2d(x, layer.weight[0], padding=2, dilation=2)
                      + F.conv2d(x, layer.weight[1], padding=6, dilation=6))
    torch.testing.assert_close(layer(x), expected, **TIGHT)
    for m in layer.masks(x):
        torch.testing.assert_close(m, torch.full_like(m, 0.5), **TIGHT)


def test_functional_matches_module():
    layer = _dmc(4, 6, 3, bias=True, mask='channel', stride=2)
    x = torch.randn(2, 4, 8, 8)
    y = dynamic_mask_conv2d(x, layer.weight, layer.bias, layer.effective_dilations, 2, 1,
                            mask='channel', mask_weight=layer.mask_weight,
                            mask_bias=layer.mask_bias, fusion='conv1x1',
                            fusion_weight=layer.fusion_weight, fusion_bias=layer.fusion_bias)
    torch.testing.assert_close(y, layer(x))


# ------------------------------------------------------------------ masks
@pytest.mark.parametrize('mask', ['spatial', 'channel'])
def test_masks_shapes_range_and_formula(mask):
    layer = _dmc(4, 6, 3, dtype=torch.float64, stride=2, mask=mask, mask_kernel_size=5)
    x = torch.randn(2, 4, 9, 7, dtype=torch.float64)
    masks = layer.masks(x)
    assert len(masks) == 3
    for i, (m, r) in enumerate(zip(masks, layer.branch_dilations)):
        y = F.conv2d(x, layer.weight[i], None, 2, r, r)
        if mask == 'spatial':
            assert m.shape == (2, 1, 5, 4)
            expected = torch.sigmoid(F.conv2d(y, layer.mask_weight[i:i + 1],
                                              layer.mask_bias[i:i + 1], padding=2))
        else:
            assert m.shape == (2, 6, 1, 1)
            expected = torch.sigmoid(F.linear(y.mean((2, 3)), layer.mask_weight[i],
                                              layer.mask_bias[i]))[:, :, None, None]
        torch.testing.assert_close(m, expected, **TIGHT)
        assert ((m > 0) & (m < 1)).all()


@pytest.mark.parametrize('mask', ['spatial', 'channel'])
def test_each_mask_depends_only_on_its_own_branch(mask):
    layer = _dmc(4, 6, 3, mask=mask)
    x = torch.randn(2, 4, 8, 8)
    before = layer.masks(x)
    with torch.no_grad():
        layer.weight[1].mul_(-3.0)
    after = layer.masks(x)
    torch.testing.assert_close(after[0], before[0])
    torch.testing.assert_close(after[2], before[2])
    assert not torch.allclose(after[1], before[1])


def test_masks_empty_without_mask():
    assert _dmc(mask='none').masks(torch.randn(1, 4, 5, 5)) == []


def test_mask_depends_on_input():
    """The mask is dynamic: two different inputs get different masks."""
    layer = _dmc()
    m1, m2 = layer.masks(torch.randn(1, 4, 8, 8)), layer.masks(torch.randn(1, 4, 8, 8))
    assert not torch.allclose(m1[0], m2[0])


# ------------------------------------------------------------------ gradcheck
@pytest.mark.parametrize('mask,fusion', OPTIONS, ids=OPTION_IDS)
def test_gradcheck(mask, fusion):
    layer = _dmc(2, 3, 3, dtype=torch.float64, mask=mask, fusion=fusion, bias=True,
                 branch_dilations=(1, 2))
    torch.manual_seed(1)
    x = torch.randn(2, 2, 5, 4, dtype=torch.float64, requires_grad=True)
    names = [n for n, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for p in layer.parameters()]

    def fn(inp, *ps):  # gradients w.r.t. the input and every parameter
        return torch.func.functional_call(layer, dict(zip(names, ps)), (inp, ))

    assert gradcheck(fn, (x, *params), eps=1e-6, atol=1e-6, rtol=1e-4)


# ------------------------------------------------------------------ errors
def test_even_kernel_rejected():
    with pytest.raises(ValueError, match=r'kernel_size must be odd .* got \(4, 4\)'):
        DynamicMaskConv2d(4, 4, 4)
    with pytest.raises(ValueError, match=r'kernel_size must be odd .* got \(3, 2\)'):
        DynamicMaskConv2d(4, 4, (3, 2), padding=(1, 0))


@pytest.mark.parametrize('padding,dilation', [(0, 1), (1, 2), ((1, 0), 1), ('valid', 1)])
def test_bad_padding_rejected(padding, dilation):
    with pytest.raises(ValueError, match=r'padding must be dilation\*\(kernel_size-1\)//2 = '
                                         r'\(\d, \d\) .*branch outputs align'):
        DynamicMaskConv2d(4, 4, 3, padding=padding, dilation=dilation)


@pytest.mark.parametrize('padding,dilation,expected', [(None, 1, (1, 1)), (2, 2, (2, 2)),
                                                       ('same', 3, (3, 3)), (None, 2, (2, 2))])
def test_padding_accepted(padding, dilation, expected):
    assert DynamicMaskConv2d(4, 4, 3, padding=padding, dilation=dilation).padding == expected


def test_unknown_mask_and_fusion():
    with pytest.raises(ValueError, match=r"unknown mask 'pixel'; expected one of "
                                         r"\['spatial', 'channel', 'none'\]"):
        DynamicMaskConv2d(4, 4, mask='pixel')
    with pytest.raises(ValueError, match=r"unknown fusion 'concat'; expected one of "
                                         r"\['conv1x1', 'sum'\]"):
        DynamicMaskConv2d(4, 4, fusion='concat')


@pytest.mark.parametrize('value,exc,msg', [
    ((), ValueError, r'at least one branch'),
    ((1, 0), ValueError, r'branch_dilations\[1\] must be >= 1, got 0'),
    ((1, 2.0), TypeError, r'branch_dilations\[1\] must be an int'),
    (2, TypeError, r'branch_dilations must be a tuple of ints, got 2'),
])
def test_bad_branch_dilations(value, exc, msg):
    with pytest.raises(exc, match=msg):
        DynamicMaskConv2d(4, 4, branch_dilations=value)


def test_bad_mask_kernel_size():
    with pytest.raises(ValueError, match=r'mask_kernel_size must be odd, got 2'):
        DynamicMaskConv2d(4, 4, mask_kernel_size=2)
    with pytest.raises(ValueError, match=r'mask_kernel_size must be >= 1, got 0'):
        DynamicMaskConv2d(4, 4, mask_kernel_size=0)


@pytest.mark.parametrize('cin,cout,name', [(0, 4, 'in_channels'), (4, -1, 'out_channels')])
def test_non_positive_channels(cin, cout, name):
    with pytest.raises(ValueError, match=rf'{name} must be >= 1'):
        DynamicMaskConv2d(cin, cout)


def test_wrong_input_rejected():
    layer = _dmc()
    with pytest.raises(ValueError, match=r'expects an input with 4 channels, got 3 channels'):
        layer(torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r'expects a 4-D input \(B, C, H, W\), got \(4, 8, 8\)'):
        layer(torch.randn(4, 8, 8))
    with pytest.raises(ValueError, match=r'expects an input with 4 channels'):
        layer.masks(torch.randn(1, 5, 8, 8))


# ------------------------------------------------------------------ behaviour
@pytest.mark.parametrize('mask', MASKS)
def test_samples_independent_and_train_eval_equal(mask):
    """No batch statistics: a batch equals its samples one by one (batch size 1), in
    train and eval mode alike."""
    layer = _dmc(mask=mask, bias=True)
    x = torch.randn(3, 4, 7, 6)
    y_train = layer.train()(x)
    y_eval = layer.eval()(x)
    torch.testing.assert_close(y_train, y_eval)
    single = torch.cat([layer.train()(x[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(single, y_train, **scale_tol(y_train, 1e-5))


def test_parameters_and_init():
    layer = _dmc(16, 16, 3, bias=True, mask='spatial', mask_kernel_size=3)
    assert layer.weight.shape == (3, 16, 16, 3, 3) and layer.bias.shape == (3, 16)
    assert layer.mask_weight.shape == (3, 16, 3, 3) and layer.mask_bias.shape == (3, )
    assert layer.fusion_weight.shape == (16, 48, 1, 1) and layer.fusion_bias.shape == (16, )
    # nn.Conv2d's default init: kaiming-uniform(a=sqrt 5) -> std 1/sqrt(3 fan_in)
    for w, fan in [(layer.weight[i], 16 * 9) for i in range(3)] + [(layer.fusion_weight, 48)]:
        assert w.std().item() == pytest.approx(1 / math.sqrt(3 * fan), rel=0.2)
    assert layer.mask_weight.abs().max() <= 1 / math.sqrt(16 * 9) + 1e-7
    channel = _dmc(8, 8, mask='channel', fusion='sum', bias=False)
    assert channel.mask_weight.shape == (3, 8, 8) and channel.mask_bias.shape == (3, 8)
    assert channel.bias is None and channel.fusion_weight is None
    assert channel.mask_weight.abs().max() <= 1 / math.sqrt(8) + 1e-7
    none = _dmc(mask='none', fusion='sum')
    assert none.mask_weight is None and none.mask_bias is None
    assert sum(p.numel() for p in none.parameters()) == 3 * 6 * 4 * 9


def test_reset_parameters_reinitialises():
    layer = _dmc(bias=True)
    with torch.no_grad():
        for p in layer.parameters():
            p.fill_(7.0)
    layer.reset_parameters()
    assert all((p != 7.0).all() for p in layer.parameters())


def test_repr_attrs_and_registration_alias():
    layer = _dmc(branch_dilations=[1, 4], mask='channel', fusion='sum')
    assert layer.branch_dilations == (1, 4)
    text = repr(layer)
    assert "branch_dilations=(1, 4), mask='channel', fusion='sum'" in text
    assert 'kernel_size=(3, 3)' in text
    assert MODULES['DMC'] is DynamicMaskConv2d
    assert layer.transposed is False and layer.output_padding == (0, 0)


def test_bf16_autocast_runs():
    layer = _dmc()
    with torch.autocast(TEST_DEVICE.type, dtype=torch.bfloat16):
        y = layer(torch.randn(2, 4, 6, 6))
    assert y.dtype == torch.bfloat16 and torch.isfinite(y.float()).all()
