"""Behaviour every layer needs inside a real network: batch size 1, channels_last,
bf16 autocast, state_dict, temperature, initialisation, repr."""
import math
import re

import pytest
import torch
import torch.nn as nn

from _ops_helpers import (ATTENTION_LAYERS, BANK_LAYERS, LAYER_NAMES, PER_SAMPLE_LAYERS,
                          STRATEGIES, TEMPERATURE_LAYERS, TEST_DEVICE, build, kernel_of,
                          scale_tol, seeded, temperature_rule)
from mmdyn.ops import LAYERS


def _layer(name, cin=4, cout=6, k=3, seed=0, **kw):
    torch.manual_seed(seed)
    kw.setdefault('padding', k // 2)
    if LAYERS[name].has_kernel_bank:
        kw.setdefault('kernel_num', 3)
    if name.startswith('A2D2C'):
        kw.setdefault('num_points', 5)
        kw.setdefault('temperature', 0.5)
    return build(name, cin, cout, k, **kw)


def _bn_state(layer):
    return {n: b.clone() for n, b in layer.named_buffers()}


#: Layers with a BatchNorm inside (ODConv's attention branch, DCD).
BN_LAYERS = [n for n in LAYER_NAMES
             if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in _layer(n).modules())]


# ------------------------------------------------------------------ (a) batch size 1
@pytest.mark.parametrize('mode', ['train', 'eval'])
@pytest.mark.parametrize('name', LAYER_NAMES)
def test_batch_size_one(name, mode):
    layer = _layer(name).train(mode == 'train')
    x = torch.randn(1, 4, 7, 8, requires_grad=True)
    y = layer(x)
    assert y.shape == (1, 6, 7, 8) and torch.isfinite(y).all()
    y.sum().backward()
    assert torch.isfinite(x.grad).all()
    # batch of one == first sample of a batch (in eval every sample is independent)
    if mode == 'eval':
        x2 = torch.cat([x.detach(), torch.randn(2, 4, 7, 8)])
        torch.testing.assert_close(layer(x2)[:1], y.detach(), **scale_tol(y))


@pytest.mark.parametrize('name', BN_LAYERS)
def test_batch_norm_batch_of_one_keeps_running_stats(name):
    """A training batch with one value per channel (B=1 after pooling, or a 1x1 map for
    DCD) must not raise and must leave the running statistics untouched."""
    layer = _layer(name, k=3, padding=0)
    with torch.no_grad():
        layer.train()
        layer(torch.randn(4, 4, 3, 3) * 3 + 1)  # non-default running stats
    before = _bn_state(layer)
    x = torch.randn(1, 4, 3, 3)  # -> 1x1 output
    y_train = layer(x)
    after = _bn_state(layer)
    for key, value in before.items():
        assert torch.equal(after[key], value), f'{key} changed by a batch of one'
    layer.eval()
    # with nothing else differing between modes, B=1 training == eval
    torch.testing.assert_close(y_train, layer(x), **scale_tol(y_train))


@pytest.mark.parametrize('name', BN_LAYERS)
def test_batch_norm_larger_batches_update_running_stats(name):
    """Counterpart of the test above: a normal training batch does update them."""
    layer = _layer(name, k=3, padding=0)
    before = _bn_state(layer)
    layer(torch.randn(3, 4, 3, 3) * 3 + 1)
    after = _bn_state(layer)
    changed = [k for k in before if 'running' in k and not torch.equal(before[k], after[k])]
    assert changed


def test_dcd_batch_of_one_with_spatial_map_updates_stats_finitely():
    """B=1 with a spatial map still has H'*W' values per channel: BN trains normally."""
    layer = _layer('DCD')
    before = _bn_state(layer)
    layer(torch.randn(1, 4, 6, 6))
    assert not torch.equal(before['bn_q.running_mean'], layer.bn_q.running_mean)
    for value in _bn_state(layer).values():
        assert torch.isfinite(value.float()).all()


# --------------------------------------------------------------- (b) channels_last
CL_CASES = [pytest.param(n, s, id=f'{n}-{s}') for n in PER_SAMPLE_LAYERS for s in STRATEGIES]
CL_CASES += [pytest.param('A2D2C', 'reference', id='A2D2C-reference'),
             pytest.param('A2D2CPlus', 'reference', id='A2D2CPlus-reference'),
             pytest.param('DCD', None, id='DCD')]


@pytest.mark.parametrize('groups', [1, 2], ids=['g1', 'g2'])
@pytest.mark.parametrize('name,strategy', CL_CASES)
def test_channels_last(name, strategy, groups):
    kw = {}
    if strategy == 'reference':
        kw['impl'] = 'reference'
    elif strategy is not None:
        kw['strategy'] = strategy
    layer = _layer(name, cin=8, cout=6, groups=groups, bias=True, **kw)
    x = torch.randn(3, 8, 7, 9)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    assert not x_cl.is_contiguous()
    for mode in ('train', 'eval'):
        layer.train(mode == 'train')
        y = seeded(1, layer, x)
        y_cl = seeded(1, layer, x_cl)
        torch.testing.assert_close(y_cl, y, **scale_tol(y))
        # values only for DCD and for the paper-literal reference impl (A2D2C+'s
        # reference sums K stacked maps, which drops the memory format)
        if strategy is not None and strategy != 'reference':
            assert y_cl.is_contiguous(memory_format=torch.channels_last), mode
            assert y.is_contiguous(), mode


# ------------------------------------------------------------- (c) bf16 autocast
@pytest.mark.parametrize('name', LAYER_NAMES)
def test_bf16_autocast(name):
    layer = _layer(name, cin=8, cout=8, bias=True)
    if name.startswith('A2D2C'):
        layer.set_temperature(5.0)  # keep the bf16 logits' error small next to T
    x = torch.randn(2, 8, 7, 8)
    y32 = seeded(1, layer, x)
    x16 = x.clone().requires_grad_()
    with torch.autocast(TEST_DEVICE.type, dtype=torch.bfloat16):
        y16 = seeded(1, layer, x16)
    assert torch.isfinite(y16).all()
    y16.float().sum().backward()
    assert torch.isfinite(x16.grad).all() and x16.grad.abs().sum() > 0
    for pname, p in layer.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    torch.testing.assert_close(y16.float(), y32.detach(), **scale_tol(y32, 5e-2))


# ----------------------------------------------------------- (d) state_dict round trip
@pytest.mark.parametrize('name', LAYER_NAMES)
def test_state_dict_round_trip(name):
    src = _layer(name, bias=True, seed=0)
    src.train()
    src(torch.randn(3, 4, 7, 8))  # move BN running stats where there are any
    src.eval()
    dst = _layer(name, bias=True, seed=1).eval()
    x = torch.randn(2, 4, 7, 8)
    assert not torch.allclose(dst(x), src(x))
    missing, unexpected = dst.load_state_dict(src.state_dict())
    assert not missing and not unexpected
    assert torch.equal(dst(x), src(x))


# ------------------------------------------------------------------ (e) temperature
# Each layer's values come from the rule of its kind of temperature (a softmax/sigmoid
# divisor: finite > 0; KernelWarehouse's blend weight: [0, 1]), see _ops_helpers.
@pytest.mark.parametrize('name', TEMPERATURE_LAYERS)
def test_set_temperature(name):
    rule = temperature_rule(name)
    as_int, other = rule.valid[:2]
    layer = _layer(name)
    layer.set_temperature(as_int)
    assert layer.temperature == float(as_int) and isinstance(layer.temperature, float)
    layer.set_temperature(other)
    assert layer.temperature == other
    for bad in rule.invalid + ('abc', None):
        with pytest.raises((ValueError, TypeError), match='temperature'):
            layer.set_temperature(bad)
    assert layer.temperature == other  # unchanged by the failed calls


@pytest.mark.parametrize('name', TEMPERATURE_LAYERS)
def test_temperature_attribute_assignment_is_validated(name):
    rule = temperature_rule(name)
    as_int = rule.valid[0]
    layer = _layer(name).eval()
    layer.temperature = as_int
    assert layer.temperature == float(as_int)
    assert float(layer.state_dict()['temperature']) == float(as_int)
    x = torch.randn(2, 4, 7, 8)
    for bad in rule.invalid + ('abc', None, torch.tensor(float(rule.invalid[0]))):
        with pytest.raises((ValueError, TypeError), match='temperature'):
            layer.temperature = bad
        assert layer.temperature == float(as_int)
        assert torch.isfinite(layer(x)).all()
    for bad in rule.invalid:
        with pytest.raises(ValueError, match=rule.message):
            build(name, 4, 6, 3, padding=1, temperature=bad)


@pytest.mark.parametrize('name', TEMPERATURE_LAYERS)
def test_temperature_travels_with_the_state_dict(name):
    value = temperature_rule(name).valid[2]
    src = _layer(name, seed=0).eval()
    src.set_temperature(value)
    state = src.state_dict()
    assert state['temperature'].dtype == torch.float64 and state['temperature'].dim() == 0
    dst = _layer(name, seed=0).eval()
    assert dst.temperature != value
    x = torch.randn(2, 4, 7, 8)
    assert not torch.allclose(dst(x), src(x))
    missing, unexpected = dst.load_state_dict(state, strict=True)
    assert not missing and not unexpected
    assert dst.temperature == value and dst.temperature_from_checkpoint is True
    assert torch.equal(dst(x), src(x))
    # A model saved with torch.save/torch.load (weights-only) keeps it too.
    import io
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    again = _layer(name, seed=0)
    again.load_state_dict(torch.load(buf, weights_only=True))
    assert again.temperature == value


@pytest.mark.parametrize('name', TEMPERATURE_LAYERS)
def test_checkpoint_without_temperature_loads_with_warning(name):
    value = temperature_rule(name).valid[1]
    src = _layer(name, seed=0)
    legacy = {k: v for k, v in src.state_dict().items() if k != 'temperature'}
    dst = _layer(name, seed=1)
    dst.set_temperature(value)
    with pytest.warns(UserWarning, match=r'no attention temperature .* using '
                      rf'temperature={re.escape(f"{value:g}")}'):
        missing, unexpected = dst.load_state_dict(legacy, strict=True)
    assert not missing and not unexpected
    assert dst.temperature == value and dst.temperature_from_checkpoint is False
    assert torch.equal(kernel_of(dst), kernel_of(src))


@pytest.mark.parametrize('name,bad', [
    pytest.param(n, bad, id=f'{n}-{bad}') for n in TEMPERATURE_LAYERS
    for bad in temperature_rule(n).invalid if isinstance(bad, float)])
def test_invalid_temperature_in_checkpoint_is_an_error(name, bad):
    value = temperature_rule(name).valid[2]
    layer = _layer(name)
    layer.set_temperature(value)
    state = layer.state_dict()
    state['temperature'] = torch.tensor(bad, dtype=torch.float64)
    with pytest.raises(RuntimeError, match='invalid temperature in the checkpoint'):
        layer.load_state_dict(state)
    assert layer.temperature == value
    assert float(layer.state_dict()['temperature']) == value


@pytest.mark.parametrize('name', TEMPERATURE_LAYERS)
def test_temperature_is_used(name):
    first, second = temperature_rule(name).valid[1::2]
    layer = _layer(name).eval()
    x = torch.randn(2, 4, 7, 8)
    layer.set_temperature(first)
    y1 = layer(x)
    layer.set_temperature(second)
    assert not torch.allclose(layer(x), y1)


@pytest.mark.parametrize('name', [n for n in LAYER_NAMES if n not in TEMPERATURE_LAYERS])
def test_no_temperature(name):
    layer = _layer(name)
    assert not hasattr(layer, 'set_temperature')
    assert not hasattr(layer, 'temperature')


# ---------------------------------------------------------------- (f) initialisation
def _conv_std(cin, cout, k, groups=1):
    torch.manual_seed(123)
    return nn.Conv2d(cin, cout, k, groups=groups).weight.std().item()


@pytest.mark.parametrize('groups', [1, 2], ids=['g1', 'g2'])
@pytest.mark.parametrize('name', [n for n in BANK_LAYERS if LAYERS[n].kernel_init == 'conv2d'])
def test_kernel_bank_init_matches_conv2d(name, groups):
    layer = _layer(name, cin=64, cout=64, k=3, kernel_num=4, groups=groups, bias=True)
    ref = _conv_std(64, 64, 3, groups)
    analytic = 1 / math.sqrt(3 * 64 // groups * 9)  # kaiming_uniform(a=sqrt(5)) std
    assert abs(ref - analytic) < 0.05 * analytic
    for k in range(4):
        std = layer.weight[k].std().item()
        assert abs(std - ref) < 0.2 * ref, f'kernel {k}: std {std:.4g} vs conv {ref:.4g}'
    assert not torch.equal(layer.weight[0], layer.weight[1])
    bound = 1 / math.sqrt(64 // groups * 9)
    assert layer.bias.abs().max() <= bound and layer.bias.std() > 0.3 * bound


def test_dcd_static_kernel_init_matches_conv2d():
    layer = _layer('DCD', cin=64, cout=64, k=3, bias=True)
    ref = _conv_std(64, 64, 3)
    assert abs(layer.weight.std().item() - ref) < 0.2 * ref
    assert layer.bias.abs().max() <= 1 / math.sqrt(64 * 9)


@pytest.mark.parametrize('groups', [1, 2], ids=['g1', 'g2'])
def test_odconv_init_is_kaiming_fan_out(groups):
    layer = _layer('ODConv', cin=64, cout=64, k=3, kernel_num=4, groups=groups)
    expected = math.sqrt(2 / (64 * 9))  # fan_out = C_out * k * k, independent of groups
    for k in range(4):
        std = layer.weight[k].std().item()
        assert abs(std - expected) < 0.2 * expected, f'kernel {k}: {std:.4g}'
    assert abs(layer.weight[0].mean().item()) < 0.1 * expected


@pytest.mark.parametrize('name', LAYER_NAMES)
def test_reset_parameters_and_init_weights_reinitialise(name):
    layer = _layer(name, cin=16, cout=16, bias=True)
    assert callable(getattr(layer, 'init_weights', None))
    before = kernel_of(layer).detach().clone()
    with torch.no_grad():
        kernel_of(layer).zero_()
        layer.bias.zero_()
    torch.manual_seed(99)
    layer.init_weights()
    assert kernel_of(layer).std() > 0.5 * before.std()
    assert layer.bias.abs().sum() > 0
    torch.manual_seed(99)
    after_init = kernel_of(layer).detach().clone()
    layer.reset_parameters()
    assert torch.equal(kernel_of(layer), after_init)  # init_weights is reset_parameters


# ------------------------------------------------------------------------- (h) repr
@pytest.mark.parametrize('name', LAYER_NAMES)
def test_repr(name):
    layer = _layer(name, stride=2)
    text = repr(layer)
    assert text.startswith(type(layer).__name__ + '(')
    assert '4, 6, kernel_size=(3, 3), stride=(2, 2)' in text
    if name in BANK_LAYERS:
        assert 'kernel_num=3' in text
    if name in TEMPERATURE_LAYERS:
        assert f'temperature={layer.temperature}' in text


# ------------------------------------------------------------------------ dtypes
@pytest.mark.parametrize('name', LAYER_NAMES)
def test_float64_layer_gives_float64_output(name):
    layer = _layer(name).double()
    y = layer(torch.randn(2, 4, 7, 8, dtype=torch.float64))
    assert y.dtype == torch.float64


# Attention stays in float64 for a float64 model (it is computed in "float32 at
# least", never rounded down), in every layer.
@pytest.mark.parametrize('name', ATTENTION_LAYERS)
def test_float64_attention_stays_float64(name):
    layer = _layer(name).double()
    attn = layer.attention(torch.randn(2, 4, 7, 8, dtype=torch.float64))
    if name == 'ODConv':
        for head, a in zip(('channel', 'filter', 'spatial', 'kernel'), attn):
            assert a.dtype == torch.float64, head
    else:
        assert attn.dtype == torch.float64


def test_layers_registry():
    assert set(LAYERS) == {'A2D2C', 'A2D2CPlus', 'ODConv', 'DyConv', 'CondConv', 'DCD', 'KW'}
    for cls in LAYERS.values():
        assert issubclass(cls, nn.Module)


@pytest.mark.parametrize('name', LAYER_NAMES)
def test_class_attributes_describe_the_layer(name):
    """What a layer's class says it has (the tests' and the analysis' only source)."""
    cls = LAYERS[name]
    layer = _layer(name)
    assert callable(getattr(layer, 'madds', None))  # read by mmdyn.analysis.analytic_madds
    assert cls.has_kernel_bank == hasattr(layer, 'kernel_num')
    if cls.has_kernel_bank:
        assert layer.weight.shape == (3, 6, 4, 3, 3)
    assert bool(cls.strategies) == hasattr(layer, 'strategy')
    for strategy in cls.strategies:
        assert _layer(name, strategy=strategy).strategy == strategy
    with pytest.raises((TypeError, ValueError), match='strategy'):
        _layer(name, strategy='fft')


# ------------------------------------------------------------- strategy selection
@pytest.mark.parametrize('shape,kernel,maps_ok,expected', [
    ((1, 64, 14, 14), (64, 64, 3, 3), True, 'loop'),
    ((4, 64, 7, 7), (64, 64, 3, 3), True, 'maps'),
    ((4, 256, 7, 7), (256, 256, 3, 3), False, 'loop'),
    ((4, 4, 14, 14), (8, 4, 3, 3), True, 'grouped'),
    ((4, 256, 14, 14), (256, 1, 3, 3), True, 'grouped'),
    ((4, 64, 14, 14), (64, 64, 3, 3), True, 'grouped'),
    ((4, 256, 14, 14), (256, 256, 3, 3), True, 'loop'),
    ((4, 256, 32, 32), (256, 256, 3, 3), True, 'grouped'),
], ids=['batch1', 'tiny-map', 'tiny-map-no-maps', 'few-channels', 'depthwise', 'small-kernel',
        'small-map', 'large-map'])
def test_select_strategy_rule(shape, kernel, maps_ok, expected):
    from mmdyn.ops import select_strategy
    x = torch.empty(shape, device='cpu')  # the CPU rule, whatever MMDYN_TEST_DEVICE is
    assert select_strategy(x, kernel, shape[2:], maps_ok) == expected


def test_tiny_maps_use_blocked_loop_without_autograd():
    from mmdyn.ops import select_strategy
    with torch.no_grad():
        assert select_strategy(torch.empty(4, 256, 7, 7, device='cpu'), (256, 256, 3, 3),
                               (7, 7), True) == 'loop'


def test_forced_strategy_overrides_auto(monkeypatch):
    from mmdyn.ops import batched_conv, select_strategy
    monkeypatch.setattr(batched_conv, 'FORCED_STRATEGY', 'loop')
    assert select_strategy(torch.empty(4, 64, 8, 8), (8, 64, 3, 3), (8, 8)) == 'loop'
    # 'maps' is forced only where it applies (no spatial attention).
    monkeypatch.setattr(batched_conv, 'FORCED_STRATEGY', 'maps')
    assert select_strategy(torch.empty(4, 64, 8, 8), (8, 64, 3, 3), (8, 8), True) == 'maps'
    assert select_strategy(torch.empty(4, 64, 40, 40, device='cpu'), (8, 64, 3, 3), (40, 40),
                           False) == 'grouped'


def test_forced_strategy_auto_means_decide_by_shape(monkeypatch):
    from mmdyn.ops import batched_conv, select_strategy
    monkeypatch.setattr(batched_conv, 'FORCED_STRATEGY', 'auto')
    assert select_strategy(torch.empty(1, 64, 8, 8), (8, 64, 3, 3), (8, 8)) == 'loop'


# An unknown MMDYN_BATCHED_CONV value raises like an unknown ``strategy=`` argument.
def test_forced_strategy_unknown_raises(monkeypatch):
    from mmdyn.ops import batched_conv, batched_dynamic_conv2d
    monkeypatch.setattr(batched_conv, 'FORCED_STRATEGY', 'nonsense')
    with pytest.raises(ValueError, match='nonsense'):
        batched_dynamic_conv2d(torch.randn(2, 4, 5, 5), torch.randn(2, 4, 4, 3, 3))
