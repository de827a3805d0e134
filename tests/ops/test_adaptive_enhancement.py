"""AdaptiveEnhancement: channel (SE) and pixel attention, sequential or parallel."""
import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

from _ops_helpers import TEST_DEVICE, scale_tol
from mmdyn.ops import MODULES, AdaptiveEnhancement

TIGHT = dict(rtol=1e-10, atol=1e-10)
CONFIGS = [  # (channel_attention, pixel_attention, mode)
    (True, True, 'sequential'), (True, True, 'parallel'), (True, False, 'sequential'),
    (False, True, 'sequential'), (False, True, 'parallel'), (True, False, 'parallel')]
CONFIG_IDS = [f'{"c" if c else ""}{"p" if p else ""}-{m}' for c, p, m in CONFIGS]


def _ae(channels=8, seed=0, dtype=torch.float32, **kw):
    torch.manual_seed(seed)
    return AdaptiveEnhancement(channels, **kw).to(dtype)


def _channel(ae, x):
    h = F.relu(F.linear(x.mean((2, 3)), ae.channel_fc1.weight, ae.channel_fc1.bias))
    return torch.sigmoid(F.linear(h, ae.channel_fc2.weight, ae.channel_fc2.bias))[..., None,
                                                                                   None]


def _pixel(ae, x):
    h = F.relu(F.conv2d(x, ae.pixel_conv1.weight, ae.pixel_conv1.bias))
    return torch.sigmoid(F.conv2d(h, ae.pixel_conv2.weight, ae.pixel_conv2.bias))


@pytest.mark.parametrize('batch,hw', [(1, (5, 7)), (3, (4, 4)), (2, (1, 1))])
@pytest.mark.parametrize('cfg', CONFIGS, ids=CONFIG_IDS)
def test_shape_preserved_and_backward(cfg, batch, hw):
    c, p, mode = cfg
    ae = _ae(channel_attention=c, pixel_attention=p, mode=mode)
    x = torch.randn(batch, 8, *hw, requires_grad=True)
    y = ae(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.square().sum().backward()
    assert x.grad.abs().sum() > 0 and all(q.grad is not None for q in ae.parameters())


def test_sequential_formula():
    ae = _ae(dtype=torch.float64)
    x = torch.randn(2, 8, 5, 6, dtype=torch.float64)
    xc = x * _channel(ae, x)
    torch.testing.assert_close(ae(x), xc * _pixel(ae, xc), **TIGHT)
    channel, pixel = ae.attention_maps(x)
    torch.testing.assert_close(channel, _channel(ae, x), **TIGHT)
    torch.testing.assert_close(pixel, _pixel(ae, xc), **TIGHT)


def test_parallel_formula_and_differs_from_sequential():
    ae = _ae(dtype=torch.float64, mode='parallel')
    x = torch.randn(2, 8, 5, 6, dtype=torch.float64)
    expected = x * _channel(ae, x) * _pixel(ae, x)
    torch.testing.assert_close(ae(x), expected, **TIGHT)
    torch.testing.assert_close(ae.attention_maps(x)[1], _pixel(ae, x), **TIGHT)
    ae.mode = 'sequential'  # same weights, other order: a different function
    assert not torch.allclose(ae(x), expected)


@pytest.mark.parametrize('cfg', [c for c in CONFIGS if not (c[0] and c[1])],
                         ids=[i for c, i in zip(CONFIGS, CONFIG_IDS) if not (c[0] and c[1])])
def test_single_attention_formula(cfg):
    c, p, mode = cfg
    ae = _ae(dtype=torch.float64, channel_attention=c, pixel_attention=p, mode=mode)
    x = torch.randn(2, 8, 4, 5, dtype=torch.float64)
    expected = x * (_channel(ae, x) if c else _pixel(ae, x))
    torch.testing.assert_close(ae(x), expected, **TIGHT)


@pytest.mark.parametrize('cfg', CONFIGS, ids=CONFIG_IDS)
def test_zeroed_final_layers_scale_by_half_per_attention(cfg):
    c, p, mode = cfg
    ae = _ae(dtype=torch.float64, channel_attention=c, pixel_attention=p, mode=mode)
    with torch.no_grad():
        for last in (ae.channel_fc2, ae.pixel_conv2):
            if last is not None:
                last.weight.zero_()
                last.bias.zero_()
    x = torch.randn(2, 8, 3, 4, dtype=torch.float64)
    torch.testing.assert_close(ae(x), x * 0.5**(int(c) + int(p)), **TIGHT)


@pytest.mark.parametrize('cfg', CONFIGS, ids=CONFIG_IDS)
def test_attention_maps_shapes_and_none(cfg):
    c, p, mode = cfg
    ae = _ae(channel_attention=c, pixel_attention=p, mode=mode)
    x = torch.randn(2, 8, 5, 3)
    channel, pixel = ae.attention_maps(x)
    assert (channel is None) == (not c) and (pixel is None) == (not p)
    if c:
        assert channel.shape == (2, 8, 1, 1) and ((channel > 0) & (channel < 1)).all()
    if p:
        assert pixel.shape == (2, 1, 5, 3) and ((pixel > 0) & (pixel < 1)).all()
    assert (ae.channel_fc1 is None) == (not c) and (ae.pixel_conv1 is None) == (not p)


@pytest.mark.parametrize('cfg', CONFIGS, ids=CONFIG_IDS)
def test_gradcheck(cfg):
    c, p, mode = cfg
    ae = _ae(4, dtype=torch.float64, channel_attention=c, pixel_attention=p, mode=mode,
             reduction=2, min_hidden=2, pixel_reduction=2)
    names = [n for n, _ in ae.named_parameters()]
    params = [q.detach().clone().requires_grad_(True) for q in ae.parameters()]
    torch.manual_seed(1)
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64, requires_grad=True)

    def fn(inp, *ps):  # gradients w.r.t. the input and every parameter
        return torch.func.functional_call(ae, dict(zip(names, ps)), (inp, ))

    assert gradcheck(fn, (x, *params), eps=1e-6, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize('channels,kw,hidden,pixel_hidden', [
    (64, dict(), 4, 8), (256, dict(), 16, 32), (8, dict(reduction=2, pixel_reduction=4), 4, 4),
    (3, dict(min_hidden=1), 1, 1), (64, dict(reduction=4, min_hidden=32), 32, 32)])
def test_hidden_widths(channels, kw, hidden, pixel_hidden):
    ae = AdaptiveEnhancement(channels, **kw)
    assert ae.channel_fc1.out_features == hidden and ae.channel_fc2.out_features == channels
    assert ae.pixel_conv1.out_channels == pixel_hidden and ae.pixel_conv2.out_channels == 1


def test_errors():
    with pytest.raises(ValueError, match=r'at least one attention: channel_attention and '
                                         r'pixel_attention are both False'):
        AdaptiveEnhancement(8, channel_attention=False, pixel_attention=False)
    with pytest.raises(ValueError, match=r"unknown mode 'serial'; expected one of "
                                         r"\['sequential', 'parallel'\]"):
        AdaptiveEnhancement(8, mode='serial')
    with pytest.raises(TypeError, match=r'pixel_attention must be a bool, got 1'):
        AdaptiveEnhancement(8, pixel_attention=1)
    for name in ('reduction', 'min_hidden', 'pixel_reduction'):
        with pytest.raises(ValueError, match=rf'{name} must be >= 1, got 0'):
            AdaptiveEnhancement(8, **{name: 0})


@pytest.mark.parametrize('value,exc', [(0, ValueError), (-4, ValueError), (8.0, TypeError)])
def test_bad_in_channels(value, exc):
    with pytest.raises(exc, match=r'in_channels must be'):
        AdaptiveEnhancement(value)


def test_wrong_input_rejected():
    ae = _ae()
    with pytest.raises(ValueError, match=r'expects an input with 8 channels, got 6 channels'):
        ae(torch.randn(2, 6, 4, 4))
    with pytest.raises(ValueError, match=r'expects a 4-D input \(B, C, H, W\), got \(2, 8\)'):
        ae(torch.randn(2, 8))
    with pytest.raises(ValueError, match=r'expects an input with 8 channels'):
        ae.attention_maps(torch.randn(2, 4, 4, 4))


def test_batch_of_one_and_train_eval():
    ae = _ae()
    x = torch.randn(3, 8, 5, 5)
    y = ae.train()(x)
    torch.testing.assert_close(ae.eval()(x), y)
    single = torch.cat([ae.train()(x[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(single, y, **scale_tol(y, 1e-5))


def test_reset_parameters_and_plugin_keyword():
    ae = AdaptiveEnhancement(in_channels=16)  # the keyword mmcv's build_plugin_layer passes
    assert MODULES['AdaptiveEnhancement'] is AdaptiveEnhancement
    with torch.no_grad():
        for q in ae.parameters():
            q.fill_(3.0)
    ae.reset_parameters()
    assert all((q != 3.0).all() for q in ae.parameters())
    assert "mode='sequential'" in repr(ae) and 'pixel_reduction=8' in repr(ae)


def test_bf16_autocast_keeps_dtype():
    ae = _ae()
    x = torch.randn(2, 8, 4, 4, dtype=torch.bfloat16)
    with torch.autocast(TEST_DEVICE.type, dtype=torch.bfloat16):
        y = ae(x)
    assert y.dtype == torch.bfloat16 and torch.isfinite(y.float()).all()
