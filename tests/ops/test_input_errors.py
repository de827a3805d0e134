"""Unclear errors made clear (issue 17, part 4): an input of the wrong dtype,
``torch.jit.script`` on a layer and a DCD latent dimension larger than its input.

Every layer of ``LAYERS`` and every module of ``MODULES`` (swept from the registries)
gives one message that names the layer, the problem and the way out, where PyTorch
alone says ``mat1 and mat2 must have the same dtype`` or ``try blocks aren't
supported``. What must keep working is checked beside: autocast (bfloat16 on the CPU,
float32 weights), a float64 layer on float64 input, half layers, tracing.
"""
import warnings

import pytest
import torch
import torch.nn as nn

from _ops_helpers import LAYER_NAMES, TEST_DEVICE, build, cpu_only
from mmdyn.ops import MODULES, DCDConv2d

MODULE_NAMES = list(MODULES)
EVERY = [('layer', n) for n in LAYER_NAMES] + [('module', n) for n in MODULE_NAMES]
EVERY_IDS = [n for _, n in EVERY]


def _build(family, name, cin=4, cout=6):
    torch.manual_seed(0)
    if family == 'layer':
        return build(name, cin, cout, 3, padding=1)
    if name == 'DMC':
        return MODULES[name](cin, cout, 3, padding=1)
    return MODULES[name](in_channels=cin)


def _class_name(layer):
    return type(layer).__name__


# ----------------------------------------------------------------- input dtype
@pytest.mark.parametrize('dtype', [torch.int64, torch.uint8, torch.bool, torch.complex64],
                         ids=['int64', 'uint8', 'bool', 'complex64'])
@pytest.mark.parametrize('family,name', EVERY, ids=EVERY_IDS)
def test_non_float_input_is_refused_clearly(family, name, dtype):
    layer = _build(family, name)
    x = torch.ones(2, 4, 8, 8).to(dtype)
    with pytest.raises(TypeError, match=rf'{_class_name(layer)} expects a floating-point '
                                        rf'input, got {dtype}.*x\.float\(\)'):
        layer(x)


@pytest.mark.parametrize('family,name', EVERY, ids=EVERY_IDS)
def test_float64_input_to_a_float32_layer(family, name):
    """PyTorch's own message for this case is 'mat1 and mat2 must have the same dtype'
    or 'expected scalar type Double but found Float', depending on the layer."""
    layer = _build(family, name)
    with pytest.raises(TypeError, match=rf'{_class_name(layer)}: input dtype torch.float64 '
                                        r'does not match the layer dtype torch.float32; '
                                        r'convert the input \(x\.to\(torch\.float32\)\) or '
                                        r'the layer \(layer\.to\(torch\.float64\)\)'):
        layer(torch.randn(2, 4, 8, 8, dtype=torch.float64))


@pytest.mark.parametrize('family,name', EVERY, ids=EVERY_IDS)
def test_float32_input_to_a_float64_layer(family, name):
    layer = _build(family, name).double()
    with pytest.raises(TypeError, match=r'input dtype torch.float32 does not match the layer '
                                        r'dtype torch.float64'):
        layer(torch.randn(2, 4, 8, 8))
    # the matching dtype works
    assert layer(torch.randn(2, 4, 8, 8, dtype=torch.float64)).dtype == torch.float64


@cpu_only
@pytest.mark.parametrize('family,name', EVERY, ids=EVERY_IDS)
def test_bfloat16_autocast_with_float32_weights_still_works(family, name):
    """Under autocast the input may be bfloat16 (the output of an earlier autocast
    op) while the weights stay float32: that is not a dtype mismatch."""
    layer = _build(family, name).eval()
    x = torch.randn(2, 4, 8, 8)
    with torch.autocast('cpu', dtype=torch.bfloat16), torch.no_grad():
        for inp in (x, x.bfloat16()):
            y = layer(inp)
            assert y.shape[0] == 2 and y.is_floating_point()


def test_autocast_of_another_device_does_not_excuse_a_mismatch():
    """CUDA autocast says nothing about a CPU tensor (and conversely)."""
    if TEST_DEVICE.type != 'cpu':
        pytest.skip('checks a CPU input')
    layer = build('DyConv', 4, 6, 3, padding=1)
    with torch.autocast('cuda', dtype=torch.float16, enabled=torch.cuda.is_available()):
        with pytest.raises(TypeError, match=r'input dtype torch.float64 does not match'):
            layer(torch.randn(2, 4, 8, 8, dtype=torch.float64))


@pytest.mark.parametrize('name', ['ODConv', 'DyConv'])
def test_dtype_check_and_script_guard_survive_tracing(name):
    """Both guards read only dtypes / act only under scripting: a traced layer
    runs like the eager one."""
    layer = build(name, 4, 6, 3, padding=1).eval()
    x = torch.randn(2, 4, 8, 8)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        traced = torch.jit.trace(layer, x)
    with torch.no_grad():
        torch.testing.assert_close(traced(x), layer(x))


# -------------------------------------------------------------- torch.jit.script
@pytest.mark.parametrize('family,name', EVERY, ids=EVERY_IDS)
def test_jit_script_says_unsupported_and_what_to_use(family, name):
    layer = _build(family, name)
    with pytest.raises(RuntimeError, match=rf'{_class_name(layer)} cannot be compiled with '
                                           r'torch\.jit\.script.*use torch\.jit\.trace, '
                                           r'torch\.onnx\.export or mmdyn\.deploy'):
        torch.jit.script(layer)


def test_jit_script_of_a_network_names_the_layer():
    """Scripting a whole network stops at the first mmdyn layer, named by class."""
    net = nn.Sequential(nn.Conv2d(3, 4, 1), build('A2D2CPlus', 4, 4, 3, padding=1), nn.ReLU())
    with pytest.raises(RuntimeError, match=r'A2D2CPlusConv2d cannot be compiled with '
                                           r'torch\.jit\.script'):
        torch.jit.script(net)


# ------------------------------------------------------------ DCD latent_dim
@pytest.mark.parametrize('cin,cout,latent_dim', [(16, 16, 1000), (16, 64, 17), (4, 4, 5)])
def test_dcd_latent_dim_above_in_channels(cin, cout, latent_dim):
    """``latent_dim=1000`` on 16 channels used to ask the allocator for 250 GB."""
    with pytest.raises(ValueError, match=rf'DCD: latent_dim={latent_dim} must be <= '
                                         rf'in_channels={cin}'):
        DCDConv2d(cin, cout, 3, latent_dim=latent_dim)


def test_dcd_latent_dim_bound_is_inclusive_and_defaults_fit():
    assert DCDConv2d(16, 8, 3, latent_dim=16).latent_dim == 16
    # the default int(sqrt(C_in)) always fits, and may exceed C_out
    assert DCDConv2d(64, 4, 3).latent_dim == 8
    assert DCDConv2d(1, 4, 3).latent_dim == 1


def test_dcd_too_large_allocation_names_latent_dim(monkeypatch):
    """Within the bound, a layer too large for memory says which argument made it so
    (the allocator's own message names only a byte count)."""
    import mmdyn.ops.dcd_conv2d as dcd
    real = nn.Linear

    def fake_linear(inp, out, bias=True):
        if inp * out > 10**6:
            raise RuntimeError('[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: '
                               'not enough memory: you tried to allocate 274877906944 bytes.')
        return real(inp, out, bias=bias)

    monkeypatch.setattr(dcd.nn, 'Linear', fake_linear)
    with pytest.raises(MemoryError, match=r'DCD: latent_dim=64 needs .* parameters .*'
                                          r'choose a smaller latent_dim \(default '
                                          r'int\(sqrt\(in_channels\)\) = 8\)'):
        DCDConv2d(64, 64, 3, latent_dim=64)
