"""MultiScaleFeatureFusion: parallel odd-kernel convs fused by sum / concat / weighted."""
import itertools

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd import gradcheck

from _ops_helpers import scale_tol
from mmdyn.ops import MODULES, MultiScaleFeatureFusion

FUSIONS = ['sum', 'concat', 'weighted']
TIGHT = dict(rtol=1e-10, atol=1e-10)


def _msf(cin=4, cout=None, seed=0, dtype=torch.float32, **kw):
    torch.manual_seed(seed)
    return MultiScaleFeatureFusion(cin, cout, **kw).to(dtype)


def _branch(msf, i, x):
    """Branch i recomputed with F.conv2d: padding k // 2, the module's stride."""
    conv = msf.branches[i]
    k = msf.kernel_sizes[i]
    assert conv.weight.shape[-2:] == (k, k)
    return F.conv2d(x, conv.weight, conv.bias, msf.stride, k // 2)


def _shape_cases():
    cases = []
    for i, (fusion, stride, cout) in enumerate(itertools.product(FUSIONS, (1, 2), (None, 6))):
        batch = 1 if i % 3 == 0 else 2
        cases.append(pytest.param(fusion, stride, cout, batch,
                                  id=f'{fusion}-s{stride}-out{cout}-b{batch}'))
    return cases


@pytest.mark.parametrize('fusion,stride,cout,batch', _shape_cases())
def test_shape_matches_strided_same_conv(fusion, stride, cout, batch):
    msf = _msf(4, cout, fusion=fusion, stride=stride, bias=batch == 2)
    x = torch.randn(batch, 4, 9, 12, requires_grad=True)
    y = msf(x)
    expected = nn.Conv2d(4, cout or 4, 3, stride, 1)(x).shape
    assert y.shape == expected and msf.out_channels == (cout or 4)
    y.square().sum().backward()
    assert x.grad.abs().sum() > 0 and all(p.grad is not None for p in msf.parameters())


@pytest.mark.parametrize('stride', [1, 2])
def test_sum_is_the_blogs_sum_of_four_convs(stride):
    msf = _msf(4, 6, dtype=torch.float64, stride=stride)
    assert msf.kernel_sizes == (1, 3, 5, 7) and msf.fusion == 'sum'
    x = torch.randn(2, 4, 11, 10, dtype=torch.float64)
    expected = sum(_branch(msf, i, x) for i in range(4))
    torch.testing.assert_close(msf(x), expected, **TIGHT)


def test_concat_is_1x1_conv_of_concatenation():
    msf = _msf(4, 5, dtype=torch.float64, fusion='concat', kernel_sizes=(3, 5))
    assert msf.fuse.weight.shape == (5, 10, 1, 1)
    x = torch.randn(2, 4, 7, 8, dtype=torch.float64)
    cat = torch.cat([_branch(msf, 0, x), _branch(msf, 1, x)], 1)
    torch.testing.assert_close(msf(x), F.conv2d(cat, msf.fuse.weight, msf.fuse.bias), **TIGHT)


def test_weighted_at_init_is_mean_of_branches():
    msf = _msf(4, dtype=torch.float64, fusion='weighted')
    torch.testing.assert_close(msf.branch_weights(), torch.full((4, ), 0.25,
                                                                dtype=torch.float64))
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    unweighted = _msf(4, dtype=torch.float64, fusion='sum')  # same seed -> same branches
    torch.testing.assert_close(msf(x), unweighted(x) / 4, **TIGHT)


def test_weighted_uses_softmax_of_logits():
    msf = _msf(4, dtype=torch.float64, fusion='weighted', kernel_sizes=(1, 3, 5))
    with torch.no_grad():
        msf.logits.copy_(torch.tensor([0.5, -1.0, 2.0]))
    w = torch.softmax(torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64), 0)
    torch.testing.assert_close(msf.branch_weights(), w, **TIGHT)
    x = torch.randn(2, 4, 6, 5, dtype=torch.float64)
    expected = sum(w[i] * _branch(msf, i, x) for i in range(3))
    torch.testing.assert_close(msf(x), expected, **TIGHT)
    msf(x).sum().backward()
    assert msf.logits.grad is not None and msf.logits.grad.abs().sum() > 0


@pytest.mark.parametrize('fusion', FUSIONS)
@pytest.mark.parametrize('k', [1, 3, 5])
def test_single_kernel_is_a_conv(fusion, k):
    msf = _msf(4, 6, dtype=torch.float64, fusion=fusion, kernel_sizes=(k, ), stride=2)
    conv = nn.Conv2d(4, 6, k, 2, k // 2).double()
    with torch.no_grad():
        conv.weight.copy_(msf.branches[0].weight)
        conv.bias.copy_(msf.branches[0].bias)
    x = torch.randn(2, 4, 9, 8, dtype=torch.float64)
    expected = conv(x)
    if fusion == 'concat':
        expected = F.conv2d(expected, msf.fuse.weight, msf.fuse.bias)
    torch.testing.assert_close(msf(x), expected, **TIGHT)


def test_branch_weights_none_unless_weighted():
    assert _msf(fusion='sum').branch_weights() is None
    assert _msf(fusion='concat').branch_weights() is None
    assert _msf(fusion='sum').logits is None and _msf(fusion='sum').fuse is None


def test_bias_flag_reaches_every_conv():
    msf = _msf(4, fusion='concat', bias=False)
    assert all(c.bias is None for c in msf.branches) and msf.fuse.bias is None
    msf = _msf(4, fusion='concat')
    assert all(c.bias is not None for c in msf.branches) and msf.fuse.bias is not None


@pytest.mark.parametrize('fusion', FUSIONS)
def test_gradcheck(fusion):
    msf = _msf(2, 2, dtype=torch.float64, fusion=fusion, kernel_sizes=(1, 3))
    if fusion == 'weighted':
        with torch.no_grad():
            msf.logits.copy_(torch.tensor([0.3, -0.2]))
    names = [n for n, _ in msf.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for p in msf.parameters()]
    torch.manual_seed(1)
    x = torch.randn(2, 2, 4, 3, dtype=torch.float64, requires_grad=True)

    def fn(inp, *ps):  # gradients w.r.t. the input and every parameter
        return torch.func.functional_call(msf, dict(zip(names, ps)), (inp, ))

    assert gradcheck(fn, (x, *params), eps=1e-6, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize('kernel_sizes,exc,msg', [
    ((1, 4), ValueError, r'kernel_sizes must be odd .* got 4 in \(1, 4\)'),
    ((2, ), ValueError, r'kernel_sizes must be odd'),
    ((3, 0), ValueError, r'kernel_sizes\[1\] must be >= 1, got 0'),
    ((), ValueError, r'kernel_sizes must name at least one kernel, got \(\)'),
    (3, TypeError, r'kernel_sizes must be a tuple of odd ints, got 3'),
    ((3, 5.0), TypeError, r'kernel_sizes\[1\] must be an int'),
])
def test_bad_kernel_sizes(kernel_sizes, exc, msg):
    with pytest.raises(exc, match=msg):
        MultiScaleFeatureFusion(4, kernel_sizes=kernel_sizes)


def test_other_errors():
    with pytest.raises(ValueError, match=r"unknown fusion 'max'; expected one of "
                                         r"\['sum', 'concat', 'weighted'\]"):
        MultiScaleFeatureFusion(4, fusion='max')
    with pytest.raises(ValueError, match=r'in_channels must be >= 1, got 0'):
        MultiScaleFeatureFusion(0)
    with pytest.raises(ValueError, match=r'out_channels must be >= 1, got -2'):
        MultiScaleFeatureFusion(4, -2)
    with pytest.raises(ValueError, match=r'stride must be >= 1'):
        MultiScaleFeatureFusion(4, stride=0)
    with pytest.raises(TypeError, match=r'bias must be a bool'):
        MultiScaleFeatureFusion(4, bias='yes')


def test_wrong_input_rejected():
    msf = _msf(4)
    with pytest.raises(ValueError, match=r'expects an input with 4 channels, got 8 channels'):
        msf(torch.randn(1, 8, 5, 5))
    with pytest.raises(ValueError, match=r'expects a 4-D input \(B, C, H, W\), got '
                                         r'\(1, 4, 5, 5, 1\)'):
        msf(torch.randn(1, 4, 5, 5, 1))


def test_batch_of_one_train_eval_and_reset():
    msf = _msf(4, fusion='weighted')
    x = torch.randn(3, 4, 6, 7)
    y = msf.train()(x)
    torch.testing.assert_close(msf.eval()(x), y)
    single = torch.cat([msf(x[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(single, y, **scale_tol(y, 1e-5))
    with torch.no_grad():
        for p in msf.parameters():
            p.fill_(2.0)
    msf.reset_parameters()
    assert (msf.logits == 0).all()
    assert all((c.weight != 2.0).all() for c in msf.branches)


def test_plugin_keyword_and_alias():
    msf = MultiScaleFeatureFusion(in_channels=16)  # what mmcv's build_plugin_layer passes
    assert MODULES['MSFF'] is MultiScaleFeatureFusion
    assert msf.out_channels == 16 and len(msf.branches) == 4
    assert "kernel_sizes=(1, 3, 5, 7), fusion='sum'" in repr(msf)
