"""Invalid arguments and inputs raise with a message that says what is wrong."""
import pytest
import torch

from _ops_helpers import (BANK_LAYERS, LAYER_NAMES, PER_SAMPLE_LAYERS, TEMPERATURE_LAYERS, build,
                          temperature_rule)
from mmdyn.ops import (A2D2CConv2d, A2D2CPlusConv2d, CondConv2d, DCDConv2d, DynamicConv2d,
                       ODConv2d, batched_dynamic_conv2d, sample_positions)

A2D2C_CLASSES = [pytest.param(A2D2CConv2d, id='A2D2C'),
                 pytest.param(A2D2CPlusConv2d, id='A2D2CPlus')]


@pytest.mark.parametrize('name', BANK_LAYERS)
@pytest.mark.parametrize('value', [0, -2])
def test_kernel_num_below_one(name, value):
    with pytest.raises(ValueError, match=r'kernel_num must be >= 1'):
        build(name, 4, 4, 3, kernel_num=value)


@pytest.mark.parametrize('name', BANK_LAYERS)
def test_kernel_num_not_int(name):
    with pytest.raises(TypeError, match=r'kernel_num must be an int'):
        build(name, 4, 4, 3, kernel_num=2.0)


@pytest.mark.parametrize('cls', A2D2C_CLASSES)
def test_num_points_below_one(cls):
    with pytest.raises(ValueError, match=r'num_points must be >= 1'):
        cls(4, 4, 3, num_points=0)


@pytest.mark.parametrize('name,value', [
    pytest.param(n, v, id=f'{n}-{v!r}') for n in TEMPERATURE_LAYERS
    for v in temperature_rule(n).invalid])
def test_bad_temperature(name, value):
    with pytest.raises(ValueError, match=temperature_rule(name).message):
        build(name, 4, 4, 3, temperature=value)


@pytest.mark.parametrize('cin,cout,groups', [(4, 6, 3), (6, 4, 3), (4, 4, 8)],
                         ids=['in', 'out', 'both'])
@pytest.mark.parametrize('name', LAYER_NAMES)
def test_groups_must_divide_channels(name, cin, cout, groups):
    with pytest.raises(ValueError, match=rf'groups={groups} must divide in_channels={cin} '
                                         rf'and out_channels={cout}'):
        build(name, cin, cout, 3, groups=groups)


@pytest.mark.parametrize('name', LAYER_NAMES)
def test_groups_zero(name):
    with pytest.raises(ValueError, match=r'groups must be >= 1'):
        build(name, 4, 4, 3, groups=0)


@pytest.mark.parametrize('cls', A2D2C_CLASSES)
def test_unknown_sampling(cls):
    with pytest.raises(ValueError, match=r"unknown sampling 'uniform'; expected one of "
                                         r"\['random', 'fixed', 'none'\]"):
        cls(4, 4, 3, sampling='uniform')


@pytest.mark.parametrize('cls', A2D2C_CLASSES)
def test_unknown_eval_sampling(cls):
    with pytest.raises(ValueError, match=r"unknown eval_sampling 'all'"):
        cls(4, 4, 3, eval_sampling='all')


def test_sample_positions_unknown_mode():
    with pytest.raises(ValueError, match=r"unknown sampling 'grid'"):
        sample_positions(2, (5, 5), 3, 'grid')


@pytest.mark.parametrize('cls', A2D2C_CLASSES)
def test_unknown_impl(cls):
    with pytest.raises(ValueError, match=r"unknown impl 'cuda'; expected one of "
                                         r"\['fast', 'reference'\]"):
        cls(4, 4, 3, impl='cuda')


@pytest.mark.parametrize('name', PER_SAMPLE_LAYERS)
def test_unknown_strategy(name):
    with pytest.raises(ValueError, match=r"unknown strategy 'im2col'; expected one of "
                                         r"\['auto', 'grouped', 'loop', 'bmm'"):
        build(name, 4, 4, 3, strategy='im2col')


@pytest.mark.parametrize('name', LAYER_NAMES)
def test_wrong_input_channels(name):
    layer = build(name, 4, 6, 3, padding=1)
    with pytest.raises(ValueError, match=r'expects an input with 4 channels, got 3 channels'):
        layer(torch.randn(2, 3, 8, 8))


@pytest.mark.parametrize('shape', [(4, 8, 8), (2, 4, 8, 8, 1)], ids=['3d', '5d'])
@pytest.mark.parametrize('name', LAYER_NAMES)
def test_input_must_be_4d(name, shape):
    layer = build(name, 4, 6, 3, padding=1)
    with pytest.raises(ValueError, match=r'expects a 4-D input \(B, C, H, W\), got '
                                         + r'\(' + ', '.join(map(str, shape))):
        layer(torch.randn(*shape))


@pytest.mark.parametrize('name', LAYER_NAMES)
def test_input_too_small(name):
    layer = build(name, 4, 6, 5, dilation=2)
    with pytest.raises(ValueError, match=r'is too small for kernel \(5, 5\)'):
        layer(torch.randn(2, 4, 8, 8))


@pytest.mark.parametrize('name', LAYER_NAMES)
def test_padding_same_needs_stride_one(name):
    with pytest.raises(ValueError, match=r"padding='same' needs stride 1, got \(2, 2\)"):
        build(name, 4, 4, 3, stride=2, padding='same')


@pytest.mark.parametrize('name', LAYER_NAMES)
def test_padding_same_needs_even_extent(name):
    with pytest.raises(ValueError, match=r"padding='same' needs an even"):
        build(name, 4, 4, (2, 3), padding='same')


@pytest.mark.parametrize('name', LAYER_NAMES)
def test_unknown_padding_string(name):
    with pytest.raises(ValueError, match=r"padding must be an int, a pair, 'valid' or 'same'"):
        build(name, 4, 4, 3, padding='full')


@pytest.mark.parametrize('padding', [-1, (1, -1)], ids=['int', 'pair'])
@pytest.mark.parametrize('name', LAYER_NAMES)
def test_negative_padding(name, padding):
    with pytest.raises(ValueError, match=r'padding must be >= 0'):
        build(name, 4, 4, 3, padding=padding)


@pytest.mark.parametrize('kernel_size', [0, (3, 0)], ids=['int', 'pair'])
@pytest.mark.parametrize('name', LAYER_NAMES)
def test_kernel_size_zero(name, kernel_size):
    with pytest.raises(ValueError, match=r'kernel_size must be >= 1'):
        build(name, 4, 4, kernel_size)


@pytest.mark.parametrize('arg,value,pattern', [
    ('stride', 0, r'stride must be >= 1'),
    ('dilation', 0, r'dilation must be >= 1'),
    ('kernel_size', 3.0, r'kernel_size must be an int or a pair of ints'),
    ('kernel_size', (3, 3, 3), r'kernel_size must be an int or a pair of ints'),
    ('stride', True, r'stride must be an int or a pair of ints'),
], ids=['stride0', 'dilation0', 'kernel-float', 'kernel-triple', 'stride-bool'])
@pytest.mark.parametrize('name', LAYER_NAMES)
def test_bad_geometry(name, arg, value, pattern):
    kwargs = dict(kernel_size=3)
    kwargs[arg] = value
    with pytest.raises((ValueError, TypeError), match=pattern):
        build(name, 4, 4, **kwargs)


@pytest.mark.parametrize('cin,cout,which', [(4.0, 4, 'in_channels'), (4, '4', 'out_channels'),
                                            (True, 4, 'in_channels'),
                                            (0, 4, 'in_channels')],
                         ids=['float-in', 'str-out', 'bool-in', 'zero-in'])
@pytest.mark.parametrize('name', LAYER_NAMES)
def test_bad_channels(name, cin, cout, which):
    with pytest.raises((TypeError, ValueError), match=rf'{which} must be'):
        build(name, cin, cout, 3)


@pytest.mark.parametrize('name', LAYER_NAMES)
def test_bias_must_be_bool(name):
    with pytest.raises(TypeError, match=r'bias must be a bool'):
        build(name, 4, 4, 3, bias=1)


@pytest.mark.parametrize('value', [0, -0.5, 1.5, float('nan')])
@pytest.mark.parametrize('cls', [pytest.param(ODConv2d, id='ODConv'),
                                 pytest.param(DynamicConv2d, id='DyConv')])
def test_reduction_out_of_range(cls, value):
    with pytest.raises(ValueError, match=r'reduction must be in \(0, 1\]'):
        cls(4, 4, 3, reduction=value)


@pytest.mark.parametrize('value', [-0.1, 1.0, 2])
def test_condconv_dropout_out_of_range(value):
    with pytest.raises(ValueError, match=r'dropout must be in \[0, 1\)'):
        CondConv2d(4, 4, 3, dropout=value)


@pytest.mark.parametrize('value', [0, -1])
def test_dcd_latent_dim(value):
    with pytest.raises(ValueError, match=r'latent_dim must be >= 1'):
        DCDConv2d(4, 4, 3, latent_dim=value)


def test_dcd_reduction():
    with pytest.raises(ValueError, match=r'reduction must be >= 1'):
        DCDConv2d(4, 4, 3, reduction=0)


def test_dcd_has_no_kernel_num():
    with pytest.raises(TypeError, match=r'kernel_num'):
        DCDConv2d(4, 4, 3, kernel_num=4)


def test_options_are_keyword_only():
    # the first 8 positional arguments are nn.Conv2d's; a 9th is rejected
    with pytest.raises(TypeError):
        A2D2CConv2d(4, 4, 3, 1, 1, 1, 1, False, 4)


def test_batched_conv_unknown_strategy():
    x, w = torch.randn(2, 4, 5, 5), torch.randn(2, 4, 4, 3, 3)
    with pytest.raises(ValueError, match=r"unknown strategy 'fft'; expected one of "
                                         r"\['auto', 'grouped', 'loop', 'bmm'"):
        batched_dynamic_conv2d(x, w, strategy='fft')


@pytest.mark.parametrize('strategy', ['auto', 'grouped', 'loop', 'bmm'])
def test_batched_conv_weight_batch_mismatch(strategy):
    x, w = torch.randn(2, 4, 5, 5), torch.randn(3, 4, 4, 3, 3)
    with pytest.raises(ValueError, match=r'weight has 3 kernels for a batch of 2'):
        batched_dynamic_conv2d(x, w, strategy=strategy)


def test_registry_refuses_a_taken_name_and_an_unknown_family():
    from mmdyn.ops import LAYERS, create_conv2d, register_layer
    with pytest.raises(KeyError, match="ODConv2d is registered as 'ODConv'"):
        register_layer('ODConv')(type('OtherConv2d', (torch.nn.Module,), {}))
    with pytest.raises(ValueError, match="unknown layer family 'x'"):
        register_layer('New', family='x')
    assert 'New' not in LAYERS
    with pytest.raises(KeyError, match="unknown convolution type 'NoSuchConv'; known: Conv2d"):
        create_conv2d('NoSuchConv', 4, 4, 3)


def test_a_new_layer_file_registers_itself(tmp_path):
    """Adding a layer is one file: ``mmdyn.ops`` imports every module of the package,
    so a class decorated with ``@register_layer`` in a new file appears in ``LAYERS``,
    under its class name in ``mmdyn.ops`` and in ``create_conv2d``."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path
    pkg = tmp_path / 'mmdyn'
    shutil.copytree(Path(__file__).resolve().parents[2] / 'mmdyn', pkg,
                    ignore=shutil.ignore_patterns('__pycache__'))
    (pkg / 'ops' / 'toy_conv2d.py').write_text(
        'import torch.nn as nn\n'
        'from .registry import register_layer\n\n\n'
        "@register_layer('Toy')\n"
        'class ToyConv2d(nn.Conv2d):\n'
        '    pass\n')
    code = ('import mmdyn.ops as ops; assert ops.LAYERS["Toy"] is ops.ToyConv2d; '
            'assert type(ops.create_conv2d("Toy", 2, 3, 1)).__name__ == "ToyConv2d"; print("ok")')
    proc = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, capture_output=True,
                          text=True, env={'PYTHONPATH': str(tmp_path), 'PATH': '/usr/bin:/bin'})
    assert proc.stdout.strip() == 'ok', proc.stderr[-2000:]
