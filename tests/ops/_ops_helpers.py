"""Helpers shared by the mmdyn.ops tests (imported as a plain module)."""
import torch

from mmdyn.ops import LAYERS

LAYER_NAMES = list(LAYERS)
#: Layers with a bank of K kernels and a ``kernel_num`` argument (all but DCD).
BANK_LAYERS = [n for n in LAYER_NAMES if n != 'DCD']
#: Layers that convolve every sample with its own aggregated kernel.
PER_SAMPLE_LAYERS = ['A2D2C', 'A2D2CPlus', 'ODConv', 'DyConv', 'CondConv']
#: Layers with a ``temperature`` / ``set_temperature``.
TEMPERATURE_LAYERS = ['A2D2C', 'A2D2CPlus', 'ODConv', 'DyConv']
STRATEGIES = ('grouped', 'loop', 'bmm', 'auto')
#: Strategies of mixtures of base kernels (all but ODConv also take 'maps').
MIX_STRATEGIES = STRATEGIES + ('maps', )


def build(name, cin, cout, kernel_size, stride=1, padding=0, dilation=1, groups=1,
          bias=False, kernel_num=None, **kwargs):
    """Instantiate ``LAYERS[name]``; ``kernel_num`` is dropped for DCD."""
    if kernel_num is not None and name != 'DCD':
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
