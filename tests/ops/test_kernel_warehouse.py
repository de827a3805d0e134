"""KernelWarehouse (Li, Yao, "KernelWarehouse: Rethinking the Design of Dynamic
Convolution", ICML 2024): the partition of a kernel into cells, the temperature rule,
the shared warehouse, ``KWConv2d`` and ``KWLinear``.

The references here are written from the paper's definitions (and the official
code's rules, stated in ``mmdyn.ops.kernel_warehouse``): a kernel is tiled by cells
in the documented mixture order, at τ = 1 each mixture is the layer's own cell (or
zero) and the layer is a static convolution, the parameter counts follow the
attention's structure. Tiny tensors throughout.
"""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd import gradcheck
from torch.func import functional_call

from _ops_helpers import scale_tol
from mmdyn.ops import KernelWarehouse, KWConv2d, KWLinear
from mmdyn.ops.kernel_warehouse import (assemble_kernels, cell_shape_of, cells_used,
                                        partition_kernel, partition_of, temperature_bias)

#: The paper's "KW (nx)" settings (official configs: 1/4x and 1/2x use cells of
#: half the channels).
RATIOS = {
    '1/4': dict(cell_num_ratio=0.25, cell_inplane_ratio=0.5, cell_outplane_ratio=0.5),
    '1/2': dict(cell_num_ratio=0.5, cell_inplane_ratio=0.5, cell_outplane_ratio=0.5),
    '1': dict(cell_num_ratio=1.0),
    '2': dict(cell_num_ratio=2.0),
    '4': dict(cell_num_ratio=4.0),
}


def _place(mixtures, kernel_shape):
    """A kernel ``(C_out, C_in/g, kh, kw)`` from its ``m`` cell mixtures ``(m, c_out,
    c_in, ch, cw)``, block by block in the documented order: mixture ``i`` is spatial
    cell ``i // (g_out*g_in)`` (row-major over the kernel), output block ``i // g_in %
    g_out``, input block ``i % g_in``."""
    c_out, c_in, ch, cw = mixtures.shape[1:]
    g_out, g_in = kernel_shape[0] // c_out, kernel_shape[1] // c_in
    per_row = kernel_shape[3] // cw
    kernel = mixtures.new_zeros(kernel_shape)
    for i, cell in enumerate(mixtures):
        s, o, j = i // (g_out * g_in), i // g_in % g_out, i % g_in
        y, x = divmod(s, per_row)
        kernel[o * c_out:(o + 1) * c_out, j * c_in:(j + 1) * c_in,
               y * ch:(y + 1) * ch, x * cw:(x + 1) * cw] = cell
    return kernel


def _own_kernel(layer):
    """The static kernel of ``layer`` at τ = 1: mixture ``i`` is the cell its
    ``temperature_bias`` row picks, or zero for the zero cell (last column)."""
    cells = layer.cells.detach()
    picks = layer.temperature_bias.argmax(1)
    zero = cells.new_zeros(cells.shape[1:])
    mixtures = torch.stack([cells[p] if p < cells.size(0) else zero for p in picks.tolist()])
    return _place(mixtures, layer.kernel_shape)


# ------------------------------------------------------------------ partition maths
@pytest.mark.parametrize('kernel_shape,cell_shape', [
    ((6, 4, 3, 3), (3, 2, 1, 1)),
    ((4, 2, 1, 1), (2, 1, 1, 1)),
    ((6, 4, 3, 5), (6, 4, 3, 5)),
    ((8, 1, 3, 3), (4, 1, 1, 1)),  # depthwise
])
def test_partition_order_and_round_trip(kernel_shape, cell_shape):
    torch.manual_seed(0)
    weight = torch.randn(kernel_shape)
    partition = partition_of(kernel_shape, cell_shape)
    g_s = (kernel_shape[2] // cell_shape[2]) * (kernel_shape[3] // cell_shape[3])
    assert partition == (g_s, kernel_shape[0] // cell_shape[0], kernel_shape[1] // cell_shape[1])
    cells = partition_kernel(weight, partition, cell_shape)
    m = g_s * partition[1] * partition[2]
    assert cells.shape == (m, *cell_shape)
    assert torch.equal(_place(cells, kernel_shape), weight)  # the documented order
    # assemble ∘ partition = identity (one-hot attention, batch of 2)
    eye = torch.eye(m).expand(2, m, m)
    kernels = assemble_kernels(eye, cells, partition, kernel_shape[2:])
    assert kernels.shape == (2, *kernel_shape)
    assert torch.equal(kernels[0], weight) and torch.equal(kernels[1], weight)


def test_assemble_kernels_mixes_cells_linearly():
    torch.manual_seed(0)
    cells = torch.randn(5, 3, 2, 1, 1)
    partition, kernel_size = (9, 2, 2), (3, 3)
    attn = torch.randn(2, 36, 5)
    got = assemble_kernels(attn, cells, partition, kernel_size)
    for b in range(2):
        mixtures = torch.einsum('mn,nabcd->mabcd', attn[b], cells)
        torch.testing.assert_close(got[b], _place(mixtures, (6, 4, 3, 3)))


def test_cell_shape_of():
    # gcd of the members' channels (C_out, C_in/g), times the ratios; 1x1 or the kernel size
    assert cell_shape_of([(16, 8, 3, 3), (16, 16, 3, 3)]) == (16, 8, 1, 1)
    assert cell_shape_of([(16, 8, 3, 3), (32, 16, 1, 1)], 0.5, 0.5) == (8, 4, 1, 1)
    assert cell_shape_of([(16, 8, 3, 3), (32, 16, 3, 3)], spatial_partition=False) == (16, 8, 3, 3)
    assert cell_shape_of([(8, 1, 3, 3)], 0.5, 0.5) == (4, 1, 1, 1)  # at least 1 channel


# ------------------------------------------------------------- temperature rule
@pytest.mark.parametrize('ratio,m,n,start,expected', [
    # cell_num_ratio >= 1: mixture i gets cell start + i * int(ratio)
    (4.0, 3, 12, 0, [0, 4, 8]),
    (1.0, 3, 6, 2, [2, 3, 4]),
    # below 1, r = 1/ratio: mixture i gets the next cell iff i % r == (i // r) % r
    (0.5, 8, 4, 1, [1, -1, -1, 2, 3, -1, -1, 4]),
    (0.25, 16, 4, 0, [0, -1, -1, -1, -1, 1, -1, -1, -1, -1, 2, -1, -1, -1, -1, 3]),
], ids=['4x', '1x', '1/2x', '1/4x'])
def test_temperature_bias_rule(ratio, m, n, start, expected):
    bias, assigned = temperature_bias(m, n, start, ratio)
    assert assigned == expected
    assert bias.shape == (m, n + 1)
    assert torch.equal(bias.sum(1), torch.ones(m))  # one 1 per row
    cols = [c if c >= 0 else n for c in expected]  # -1: the zero cell, last column
    assert bias.argmax(1).tolist() == cols
    claimed = [c for c in expected if c >= 0]
    hops = int(ratio) if ratio >= 1 else 1
    assert cells_used(m, ratio) == len(claimed) * hops


@pytest.mark.parametrize('ratio', list(RATIOS))
def test_every_cell_is_claimed_once(ratio):
    """Two layers of one warehouse: their cell ranges tile the warehouse, and at τ = 1
    every cell is picked by exactly the layer whose range holds it."""
    wh = KernelWarehouse(**RATIOS[ratio])
    a = KWConv2d(8, 16, 3, padding=1, warehouse=wh, warehouse_name='s')
    b = KWConv2d(16, 16, 1, warehouse=wh, warehouse_name='s')
    wh.build()
    n = wh.cells['s'].size(0)
    assert a.cell_range[0] == 0 and a.cell_range[1] == b.cell_range[0] and b.cell_range[1] == n
    for layer in (a, b):
        lo, hi = layer.cell_range
        picks = [p for p in layer.temperature_bias.argmax(1).tolist() if p < n]
        step = max(int(RATIOS[ratio]['cell_num_ratio']), 1)
        assert picks == list(range(lo, hi, step))


def test_build_order_sets_the_allocation():
    wh = KernelWarehouse()
    a = KWConv2d(8, 16, 3, padding=1, warehouse=wh)
    b = KWConv2d(16, 16, 3, padding=1, warehouse=wh)
    wh.build(order=[b, a])
    assert b.cell_range == (0, 18) and a.cell_range == (18, 27)
    assert wh.members('default') == [b, a]


# --------------------------------------------------------- the layer against conv
GEOMETRIES = {  # (C_in, C_out, k, stride, padding, dilation, groups, bias, options)
    'plain': (8, 16, 3, 1, 1, 1, 1, False, {}),
    'stride2': (8, 16, 3, 2, 1, 1, 1, True, {}),
    'pad0': (8, 16, 3, 1, 0, 1, 1, False, {}),
    'dilation2': (8, 16, 3, 1, 2, 2, 1, True, {}),
    'groups2': (8, 16, 3, 1, 1, 1, 2, True, {}),
    'depthwise': (8, 8, 3, 2, 1, 1, 8, False, {}),
    '1x1': (8, 16, 1, 1, 0, 1, 1, True, {}),
    'rect-5x3': (8, 16, (5, 3), 1, (2, 1), 1, 1, False, {}),
    'whole-kernel-cells': (8, 16, 3, 1, 1, 1, 1, True, dict(spatial_partition=False)),
}
CASES = [pytest.param(*g, id=name) for name, g in GEOMETRIES.items()]
CASES += [pytest.param(8, 16, 3, 1, 1, 1, 1, True, opts, id=f'ratio-{r}')
          for r, opts in RATIOS.items()]
CASES += [pytest.param(8, 16, 3, 2, 1, 1, 2, False, RATIOS['1/2'], id='ratio-1/2-groups2-s2'),
          pytest.param(8, 16, 3, 1, 1, 1, 1, False, dict(RATIOS['4'], spatial_partition=False),
                       id='ratio-4-whole-kernel-cells')]


@pytest.mark.parametrize('cin,cout,k,s,p,d,g,bias,options', CASES)
def test_matches_conv2d_and_reduces_to_static(cin, cout, k, s, p, d, g, bias, options):
    torch.manual_seed(0)
    layer = KWConv2d(cin, cout, k, s, p, d, g, bias, **options).eval()
    conv = nn.Conv2d(cin, cout, k, s, p, d, g, bias)
    x = torch.randn(2, cin, 7, 6)
    y = layer(x)
    assert y.shape == conv(x).shape and torch.isfinite(y).all()
    # τ = 0: every sample's kernel is its own mixture of all cells
    attn = layer.attention(x).detach()
    assert attn.shape == (2, layer.temperature_bias.size(0), layer.cells.size(0))
    cells = layer.cells.detach()
    for b in range(2):
        kernel = _place(torch.einsum('mn,nabcd->mabcd', attn[b], cells), layer.kernel_shape)
        ref = F.conv2d(x[b:b + 1], kernel, layer.bias, s, p, d, g)
        torch.testing.assert_close(y[b:b + 1], ref, **scale_tol(ref))
    # τ = 1: a static convolution with the kernel of the layer's own cells
    layer.set_temperature(1.0)
    ref = F.conv2d(x, _own_kernel(layer), layer.bias, s, p, d, g)
    torch.testing.assert_close(layer(x), ref, **scale_tol(ref))
    if options.get('cell_num_ratio', 1.0) < 1:  # some mixtures are the zero cell
        assert (layer.temperature_bias.argmax(1) == layer.cells.size(0)).any()


def test_attention_formula():
    """α = (1 - τ) z / (Σ|z| + 1e-3) + τ β over the n + 1 logits, zero cell dropped."""
    torch.manual_seed(0)
    layer = KWConv2d(8, 16, 3, padding=1).eval()
    x = torch.randn(3, 8, 5, 5)
    z = layer.attention_net(x)
    beta = layer.temperature_bias
    for tau in (0.0, 0.3, 1.0):
        layer.set_temperature(tau)
        ref = (1 - tau) * z / (z.abs().sum(-1, keepdim=True) + 1e-3) + tau * beta
        torch.testing.assert_close(layer.attention(x), ref[..., :-1])
    # τ = 1: exactly the temperature-initialised choice, for every sample
    assert torch.equal(layer.attention(x), beta[:, :-1].expand(3, -1, -1))


# --------------------------------------------------------------------- gradients
@pytest.mark.parametrize('tau', [0.0, 0.5])
def test_gradcheck_float64(tau):
    torch.manual_seed(0)
    layer = KWConv2d(2, 4, 3, padding=1, bias=True, temperature=tau).double().eval()
    x = torch.randn(2, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    assert gradcheck(layer, (x,), eps=1e-6, atol=1e-6, rtol=1e-4)
    names = ['warehouse.cells.default', 'bias', 'attention_net.fc1.weight']
    params = dict(layer.named_parameters())
    tensors = tuple(params[n].detach().clone().requires_grad_() for n in names)

    def fn(*ts):
        return functional_call(layer, dict(zip(names, ts)), (x.detach(),))

    assert gradcheck(fn, tensors, eps=1e-6, atol=1e-6, rtol=1e-4)


def test_batch_of_one_in_training():
    torch.manual_seed(0)
    layer = KWConv2d(8, 16, 3, padding=1).train()
    stats = {k: v.clone() for k, v in layer.named_buffers() if 'running' in k}
    x = torch.randn(1, 8, 5, 5, requires_grad=True)
    y = layer(x)
    y.square().sum().backward()
    assert torch.isfinite(x.grad).all() and layer.cells.grad.abs().sum() > 0
    for name, p in layer.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    for key, value in stats.items():  # a batch of one leaves BatchNorm alone
        assert torch.equal(dict(layer.named_buffers())[key], value), key
    layer(torch.randn(3, 8, 5, 5))  # a real batch does update it
    assert not torch.equal(layer.attention_net.norm.running_mean,
                           stats['attention_net.norm.running_mean'])


# ------------------------------------------------------------------------ sharing
def _shared_pair(**options):
    """One stage: an 8->16 and a 16->16 3x3 conv drawing from warehouse 'stage1'."""
    torch.manual_seed(0)
    wh = KernelWarehouse(**options)
    a = KWConv2d(8, 16, 3, padding=1, warehouse=wh, warehouse_name='stage1')
    b = KWConv2d(16, 16, 3, padding=1, warehouse=wh, warehouse_name='stage1')
    wh.build()
    return wh, a.eval(), b.eval()


def test_shared_layers_draw_from_one_tensor():
    wh, a, b = _shared_pair()
    cells = wh.cells['stage1']
    # cells of 16 x 8 (gcds of 16, 16 and 8, 16); 9 + 18 mixtures -> 27 cells
    assert cells.shape == (27, 16, 8, 1, 1)
    assert a.cells is cells and b.cells is cells
    xa, xb = torch.randn(2, 8, 5, 5), torch.randn(2, 16, 5, 5)
    for layer, x in ((a, xa), (b, xb)):
        cells.grad = None
        layer(x).square().sum().backward()
        assert cells.grad is not None and cells.grad.abs().sum() > 0
        # all n cells get gradient, not only the layer's own ones
        assert (cells.grad.flatten(1).abs().sum(1) > 0).all()
    with torch.no_grad():
        ya, yb = a(xa), b(xb)
        cells[a.cell_range[0]].add_(1.0)  # a cell of layer A ...
        assert not torch.allclose(a(xa), ya) and not torch.allclose(b(xb), yb)  # ... moves both


def test_shared_state_dict_holds_the_cells_once():
    wh, a, b = _shared_pair()
    model = nn.ModuleDict(dict(warehouse=wh, a=a, b=b))
    keys = [k for k in model.state_dict() if 'cells' in k]
    assert keys == ['warehouse.cells.stage1']
    assert not any('cells' in k for k in a.state_dict())
    assert 'cells.stage1' in wh.state_dict()
    # and a copy of the whole model loads it back
    _, a2, b2 = _shared_pair()
    model2 = nn.ModuleDict(dict(warehouse=a2.kernel_warehouse, a=a2, b=b2))
    with torch.no_grad():
        a2.cells.zero_()
    model2.load_state_dict(model.state_dict())
    x = torch.randn(2, 16, 5, 5)
    assert torch.equal(b2(x), b(x))


def test_unbuilt_warehouse_is_a_clear_error():
    wh = KernelWarehouse()
    layer = KWConv2d(8, 16, 3, padding=1, warehouse=wh)
    with pytest.raises(RuntimeError, match=r"warehouse 'default' is not built yet"):
        layer(torch.randn(2, 8, 5, 5))
    wh.build()
    assert layer(torch.randn(2, 8, 5, 5)).shape == (2, 16, 5, 5)
    with pytest.raises(RuntimeError, match='cannot reserve a layer after build'):
        KWConv2d(8, 16, 3, warehouse=wh)


def test_options_of_a_shared_layer_belong_to_the_warehouse():
    with pytest.raises(ValueError, match=r"\['cell_num_ratio'\] are options of the shared "
                                         r'warehouse'):
        KWConv2d(8, 16, 3, warehouse=KernelWarehouse(), cell_num_ratio=2.0)
    with pytest.raises(TypeError, match='warehouse must be a KernelWarehouse'):
        KWConv2d(8, 16, 3, warehouse=nn.Module())


def test_overrides_apply_per_warehouse():
    wh = KernelWarehouse(overrides=dict(stage2=dict(cell_num_ratio=2.0)))
    a = KWConv2d(8, 16, 3, padding=1, warehouse=wh, warehouse_name='stage1')
    b = KWConv2d(16, 16, 3, padding=1, warehouse=wh, warehouse_name='stage2')
    wh.build()
    # 9 mixtures each (cells of 16 x 8, then 16 x 16): 9 cells, then 2 x 9
    assert wh.cells['stage1'].shape == (9, 16, 8, 1, 1)
    assert wh.cells['stage2'].shape == (18, 16, 16, 1, 1)
    assert a.cell_range == (0, 9) and b.cell_range == (0, 18)
    wh = KernelWarehouse(overrides=dict(stage3=dict(cell_num_ratio=2.0)))
    KWConv2d(8, 16, 3, warehouse=wh, warehouse_name='stage1')
    with pytest.raises(ValueError, match=r"overrides for unknown warehouse\(s\) \['stage3'\]"):
        wh.build()


@pytest.mark.parametrize('options,match', [
    (dict(cell_num_ratio=0), 'cell_num_ratio must be a finite number > 0'),
    (dict(cell_inplane_ratio=-0.5), 'cell_inplane_ratio must be a finite number > 0'),
    (dict(reduction=float('nan')), 'reduction must be a finite number > 0'),
    (dict(nonlocal_basis_ratio=float('inf')), 'nonlocal_basis_ratio must be a finite number'),
    (dict(cell_number_ratio=2), r"unknown option\(s\) \['cell_number_ratio'\]"),
], ids=['zero', 'negative', 'nan', 'inf', 'unknown'])
def test_bad_warehouse_options(options, match):
    with pytest.raises(ValueError, match=match):
        KernelWarehouse(**options)
    with pytest.raises(ValueError, match=r"KernelWarehouse\['s'\]: " + match):
        KernelWarehouse(overrides=dict(s=options))


def test_bad_option_of_a_plain_layer():
    with pytest.raises(ValueError, match='cell_num_ratio must be a finite number > 0'):
        KWConv2d(8, 16, 3, cell_num_ratio=0.0)


@pytest.mark.parametrize('build,match', [
    # cells of 6 input channels (0.75 of the gcd 8) do not tile 8 channels
    (lambda: KWConv2d(8, 16, 3, cell_inplane_ratio=0.75), r'cells of 16 x 6 channels do not '
                                                           r'tile a kernel \(16, 8, 3, 3\)'),
    # 1/2x with whole-channel cells: 5 of the 4 cells would be claimed (official rule)
    (lambda: KWConv2d(8, 16, 3, cell_num_ratio=0.5), r'gives its layers 5 cells of their own '
                                                      r'but it holds 4 \(cell_num_ratio=0.5'),
], ids=['cell-does-not-tile', 'ratio-without-smaller-cells'])
def test_bad_cell_shapes(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_whole_kernel_cells_need_one_kernel_size():
    wh = KernelWarehouse(spatial_partition=False)
    KWConv2d(8, 16, 3, warehouse=wh)
    KWConv2d(16, 16, 1, warehouse=wh)
    with pytest.raises(ValueError, match=r'spatial_partition=False needs one kernel size'):
        wh.build()


@pytest.mark.parametrize('name', ['', 'a.b', 3])
def test_bad_warehouse_name(name):
    with pytest.raises(ValueError, match='a warehouse name must be a non-empty str'):
        KWConv2d(8, 16, 3, warehouse=KernelWarehouse(), warehouse_name=name)


# -------------------------------------------------------------------- temperature
def test_temperature_round_trip_and_range():
    torch.manual_seed(0)
    src = KWConv2d(8, 16, 3, padding=1).eval()
    assert src.temperature == 0.0  # default: the attention alone
    src.set_temperature(0.3)
    state = src.state_dict()
    assert state['temperature'].dtype == torch.float64 and float(state['temperature']) == 0.3
    dst = KWConv2d(8, 16, 3, padding=1).eval()
    dst.load_state_dict(state)
    assert dst.temperature == 0.3
    x = torch.randn(2, 8, 5, 5)
    assert torch.equal(dst(x), src(x))
    with pytest.raises(ValueError, match=r'temperature must be in \[0, 1\], got 1.5'):
        dst.set_temperature(1.5)
    for bad in (-0.1, float('nan'), float('inf')):
        with pytest.raises(ValueError, match=r'temperature must be in \[0, 1\]'):
            dst.set_temperature(bad)
    assert dst.temperature == 0.3
    # τ is a blend weight: 0 and 1 are both valid, and differ
    dst.set_temperature(0)
    y0 = dst(x)
    dst.set_temperature(1)
    assert not torch.allclose(dst(x), y0)


# ----------------------------------------------------------------- non-local basis
def test_nonlocal_basis_shapes_and_parameter_count():
    """The official ResNet-50 KW 1/2x setting (nonlocal_basis_ratio < 1) on one stage
    of a 16->32 and a 32->32 3x3 conv: cells of 16 x 8 (half the gcds 32, 16)."""
    wh = KernelWarehouse(cell_num_ratio=0.5, cell_inplane_ratio=0.5, cell_outplane_ratio=0.5,
                         nonlocal_basis_ratio=0.5)
    a = KWConv2d(16, 32, 3, padding=1, warehouse=wh)
    b = KWConv2d(32, 32, 3, padding=1, warehouse=wh)
    wh.build()
    m_a, m_b = 9 * 2 * 2, 9 * 2 * 4            # spatial x out blocks x in blocks
    n = (m_a + m_b) // 2                        # 54 cells
    assert wh.cells['default'].shape == (n, 16, 8, 1, 1)
    hidden = 16                                 # max(int(C_in / 16), 16)
    for layer, cin, m in ((a, 16, m_a), (b, 32, m_b)):
        local = m // 2                          # int(ratio * m): its own share
        basis = max(int((n - local) * 0.5), 16)
        att = layer.attention_net
        assert att.fc2.weight.shape == (m * (local + basis + 1), hidden) and att.fc2.bias is None
        assert att.fc3.weight.shape == (n - local, basis)
        assert att.basis_bias.shape == (m * (n + 1),)
        expected = (cin * hidden + 2 * hidden + hidden * m * (local + basis + 1)
                    + basis * (n - local) + m * (n + 1))
        assert sum(p.numel() for p in layer.parameters()) == expected
        x = torch.randn(2, cin, 5, 5)
        assert layer.attention(x).shape == (2, m, n)
        assert layer(x).shape == (2, 32, 5, 5)
    # the logits of a layer's own cells come from FC2 and sit at its own cells (from
    # cell 18 for the second layer), the others from the basis through FC3
    assert b.cell_range == (m_a // 2, n)
    with torch.no_grad():
        b.attention_net.fc3.weight.zero_()
    z = b.attention_net(torch.randn(2, 32, 5, 5))
    lo = b.cell_range[0]
    assert z[..., :lo].abs().sum() == 0 and z[..., lo:n].abs().min() > 0


# ------------------------------------------------------------------ parameter counts
@pytest.mark.parametrize('options,cells,m,n', [
    # 64->64 3x3: cells of 64 x 64 x 1 x 1, m = 9 mixtures
    ({}, 9 * 64 * 64, 9, 9),
    (dict(cell_num_ratio=4.0), 36 * 64 * 64, 9, 36),
    # 1/2x: cells of 32 x 32, m = 9 * 2 * 2 = 36, n = 18
    (RATIOS['1/2'], 18 * 32 * 32, 36, 18),
    # 1/4x: m = 36, n = 9
    (RATIOS['1/4'], 9 * 32 * 32, 36, 9),
    # one cell per kernel: m = 1, n = 1
    (dict(spatial_partition=False), 64 * 64 * 9, 1, 1),
], ids=['1x', '4x', '1/2x', '1/4x', 'whole-kernel'])
@pytest.mark.parametrize('bias', [False, True])
def test_parameter_count_of_one_layer(options, cells, m, n, bias):
    """cells + FC1 (C_in x hidden, no bias) + BatchNorm (2 x hidden) + FC2 (hidden x
    m(n+1), with bias) [+ the conv bias], hidden = max(int(64/16), 16) = 16."""
    layer = KWConv2d(64, 64, 3, padding=1, bias=bias, **options)
    hidden = 16
    expected = cells + 64 * hidden + 2 * hidden + (hidden + 1) * m * (n + 1) + 64 * bias
    assert sum(p.numel() for p in layer.parameters()) == expected
    assert layer.cells.numel() == cells


# ------------------------------------------------------------------------ KWLinear
def test_kw_linear():
    torch.manual_seed(0)
    lin = KWLinear(8, 12).eval()
    x = torch.randn(3, 8)
    y = lin(x)
    assert y.shape == (3, 12) and lin.conv.bias is not None
    conv = KWConv2d(8, 12, 1, bias=True).eval()
    conv.load_state_dict(lin.conv.state_dict())
    assert torch.equal(y, conv(x[:, :, None, None]).flatten(1))
    for bad in (torch.randn(3, 8, 1), torch.randn(3, 7)):
        with pytest.raises(ValueError, match=r'KWLinear expects a \(B, 8\) input'):
            lin(bad)
    assert 'in_features=8, out_features=12' in repr(lin)
    # shared: a KWLinear draws from a warehouse like a conv
    wh = KernelWarehouse()
    shared = KWLinear(8, 12, bias=False, warehouse=wh, warehouse_name='head')
    wh.build()
    assert shared.conv.cells is wh.cells['head'] and shared(x).shape == (3, 12)
    assert math.prod(wh.cells['head'].shape[1:]) == 12 * 8
