"""Helpers shared by the mmdyn.ops tests (imported as a plain module)."""
import os

import pytest
import torch

# STRATEGIES ('auto', 'grouped', 'loop', 'bmm') and MIX_STRATEGIES (+ 'maps', all
# but ODConv) are re-exported for the tests.
from mmdyn.ops import LAYERS, MIX_STRATEGIES, STRATEGIES  # noqa: F401
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
