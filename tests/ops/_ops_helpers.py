"""Helpers shared by the mmdyn.ops tests (imported as a plain module)."""
import os
from typing import NamedTuple

import pytest
import torch

# STRATEGIES ('auto', 'grouped', 'loop', 'bmm') and MIX_STRATEGIES (+ 'maps', all
# but ODConv) are re-exported for the tests.
from mmdyn.ops import LAYERS, MIX_STRATEGIES, STRATEGIES, KWConv2d  # noqa: F401
from mmdyn.ops._base import TemperatureMixin


def _test_device() -> torch.device:
    """The device of the layer tests: ``MMDYN_TEST_DEVICE`` (default cpu)."""
    name = os.environ.get('MMDYN_TEST_DEVICE') or 'cpu'
    try:
        device = torch.device(name)
    except RuntimeError:
        raise pytest.UsageError(f'MMDYN_TEST_DEVICE={name!r} is not a device; expected cpu, '
                                'cuda or cuda:N') from None
    if device.type not in ('cpu', 'cuda'):
        raise pytest.UsageError(f'MMDYN_TEST_DEVICE={name!r}: only cpu and cuda are supported')
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise pytest.UsageError(
            f'MMDYN_TEST_DEVICE={name} but torch {torch.__version__} sees no CUDA device '
            '(torch.cuda.is_available() is False); unset it to run the layer tests on the CPU')
    return device


#: Where tensors and modules created without an explicit device live (conftest
#: makes it torch's default device for every test of tests/ops).
TEST_DEVICE = _test_device()
#: For tests of CPU-specific behaviour (the CPU rule of ``strategy='auto'``).
cpu_only = pytest.mark.skipif(TEST_DEVICE.type != 'cpu',
                              reason=f'checks CPU-only behaviour; MMDYN_TEST_DEVICE={TEST_DEVICE}')
#: For tests that need a GPU (CI is CPU-only: these are skipped there).
requires_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason='needs a CUDA device; none is visible to torch (run on a GPU machine: '
    'MMDYN_TEST_DEVICE=cuda pytest tests/ops)')

# What every layer has, read off its class (``DynamicConvBase``'s attributes):
# a new layer of ``LAYERS`` joins every list it belongs to without a test edit.
LAYER_NAMES = list(LAYERS)
#: Layers with a bank of K kernels and a ``kernel_num`` argument.
BANK_LAYERS = [n for n in LAYER_NAMES if LAYERS[n].has_kernel_bank]
#: Layers that convolve every sample with its own aggregated kernel (``strategy=``).
PER_SAMPLE_LAYERS = [n for n in LAYER_NAMES if LAYERS[n].strategies]
#: Layers with a ``temperature`` / ``set_temperature``.
TEMPERATURE_LAYERS = [n for n in LAYER_NAMES if issubclass(LAYERS[n], TemperatureMixin)]
#: Layers with an ``attention(x)`` method.
ATTENTION_LAYERS = [n for n in LAYER_NAMES if callable(getattr(LAYERS[n], 'attention', None))]


class TemperatureRule(NamedTuple):
    """What a kind of temperature accepts, for the generic temperature tests.

    Attributes:
        valid: Four distinct valid values, the first an int (stored as a float).
        invalid: Numbers refused with a ``ValueError``.
        message: Regex of that error's message.
    """
    valid: tuple
    invalid: tuple
    message: str


_NAN, _INF = float('nan'), float('inf')
#: A softmax/sigmoid divisor (``TemperatureMixin``'s own check): finite and > 0.
DIVISOR_RULE = TemperatureRule(valid=(7, 0.25, 4.321, 50.0),
                               invalid=(0, 0.0, -1, -2.0, _NAN, _INF, -_INF),
                               message=r'temperature must be a finite number > 0')
#: KernelWarehouse's blend weight τ in [0, 1] (``KWConv2d.check_temperature_value``).
BLEND_RULE = TemperatureRule(valid=(1, 0.25, 0.4321, 0.0),
                             invalid=(1.5, 2, -0.1, -1, _NAN, _INF, -_INF),
                             message=r'temperature must be in \[0, 1\]')
_RULES = {TemperatureMixin.check_temperature_value: DIVISOR_RULE,
          KWConv2d.check_temperature_value: BLEND_RULE}


def temperature_rule(name) -> TemperatureRule:
    """The rule of ``LAYERS[name]``'s temperature, read off the check its class
    uses (``check_temperature_value``; the mixin's unless the class overrides it)."""
    check = LAYERS[name].check_temperature_value
    if check not in _RULES:
        raise KeyError(f'{name} has its own check_temperature_value: add its '
                       'TemperatureRule to tests/ops/_ops_helpers.py')
    return _RULES[check]


def kernel_of(layer) -> torch.Tensor:
    """The learnt kernels of a layer: ``weight`` (a bank ``(K, C_out, C_in/g, kh,
    kw)`` or one kernel), or for a layer without one (KernelWarehouse) the
    ``cells`` it mixes."""
    weight = getattr(layer, 'weight', None)
    return layer.cells if weight is None else weight


def build(name, cin, cout, kernel_size, stride=1, padding=0, dilation=1, groups=1,
          bias=False, kernel_num=None, **kwargs):
    """Instantiate ``LAYERS[name]``; ``kernel_num`` is dropped for a layer without
    a kernel bank (DCD)."""
    if kernel_num is not None and LAYERS[name].has_kernel_bank:
        kwargs['kernel_num'] = kernel_num
    return LAYERS[name](cin, cout, kernel_size, stride, padding, dilation, groups, bias,
                        **kwargs)


def seeded(seed, fn, *args):
    """``fn(*args)`` right after ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    return fn(*args)


def scale_tol(ref, rel=1e-5):
    """assert_close kwargs with an absolute tolerance scaled to ``ref``'s magnitude."""
    return dict(rtol=rel, atol=rel * max(float(ref.detach().abs().max()), 1e-12))
