"""The attention temperature keeps its value whatever the module's dtype: a
``.half()`` / ``.to(torch.bfloat16)`` layer stores 7.3 as 7.3 (not 7.30078) and
1e6 as 1e6 (not inf, which its own reload would refuse); ``.to(device)`` still
moves the buffer, ``.double()`` / ``.float()`` leave it float64, and the layer
still runs in half / bfloat16."""
import pytest
import torch

from _ops_helpers import TEMPERATURE_LAYERS, TEST_DEVICE, build, temperature_rule
from mmdyn.ops import LAYERS

#: A value each kind of temperature accepts that half precision cannot hold
#: exactly, and for the divisor temperatures one beyond float16's range.
_INEXACT = {'divisor': (7.3, 1e6), 'blend': (0.7, 0.3)}


def _values(name):
    return _INEXACT['blend' if temperature_rule(name).message.endswith(r'\[0, 1\]') else
                    'divisor']


def _layer(name):
    torch.manual_seed(0)
    kwargs = dict(padding=1)
    if LAYERS[name].has_kernel_bank:
        kwargs['kernel_num'] = 2
    if name.startswith('A2D2C'):
        kwargs['num_points'] = 5
    return build(name, 4, 6, 3, **kwargs)


def _buffer(layer):
    return layer._buffers['temperature']


@pytest.mark.parametrize('cast', ['half', 'bfloat16', 'to_half', 'float_then_double'])
@pytest.mark.parametrize('name', TEMPERATURE_LAYERS)
def test_casts_keep_the_exact_temperature(name, cast):
    for value in _values(name):
        layer = _layer(name)
        layer.set_temperature(value)
        if cast == 'half':
            layer.half()
            dtype = torch.float16
        elif cast == 'bfloat16':
            layer.to(torch.bfloat16)
            dtype = torch.bfloat16
        elif cast == 'to_half':
            layer.to(TEST_DEVICE, torch.float16)
            dtype = torch.float16
        else:
            layer.float().double()
            dtype = torch.float64
        assert next(layer.parameters()).dtype == dtype  # the cast did happen
        assert _buffer(layer).dtype == torch.float64
        assert layer.temperature == value and float(_buffer(layer)) == value
        state = layer.state_dict()
        assert state['temperature'].dtype == torch.float64
        assert float(state['temperature']) == value
        # The round trip through the state dict keeps it (and is not refused).
        again = _layer(name).to(dtype)
        again.load_state_dict(state)
        assert again.temperature == value and _buffer(again).dtype == torch.float64


@pytest.mark.parametrize('name', TEMPERATURE_LAYERS)
def test_device_moves_still_move_the_buffer(name):
    layer = _layer(name)
    layer.set_temperature(_values(name)[0])
    layer.to('meta')
    assert _buffer(layer).device.type == 'meta' and _buffer(layer).dtype == torch.float64
    assert layer.temperature == _values(name)[0]
    layer = _layer(name).to(TEST_DEVICE).half()
    assert _buffer(layer).device == next(layer.parameters()).device


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
@pytest.mark.parametrize('name', TEMPERATURE_LAYERS)
def test_forward_runs_in_low_precision(name, dtype):
    """What ran in half / bfloat16 before still runs (the forward reads the
    temperature as a Python float)."""
    layer = _layer(name).eval().to(dtype)
    layer.set_temperature(_values(name)[0])
    x = torch.randn(2, 4, 6, 6, dtype=dtype)
    with torch.no_grad():
        try:
            y = layer(x)
        except RuntimeError as err:  # an op without a low-precision CPU kernel
            if 'not implemented for' in str(err):
                pytest.skip(f'{name}: {err}')
            raise
    assert y.dtype == dtype and y.shape == (2, 6, 6, 6)
    assert _buffer(layer).dtype == torch.float64
