"""A2D2C / A2D2C+: fast path vs the paper's literal computation, sampling, the patch
mean identity, and gradients through the attention."""
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from _ops_helpers import MIX_STRATEGIES, cpu_only, scale_tol, seeded
from mmdyn.ops import (A2D2CConv2d, A2D2CPlusConv2d, mean_input_patches, mixed_kernel_conv2d,
                       sample_positions)

CLASSES = [pytest.param(A2D2CConv2d, id='A2D2C'), pytest.param(A2D2CPlusConv2d, id='A2D2CPlus')]

# (C_in, C_out, kernel, stride, padding, dilation, groups, bias)
GEOMETRIES = [
    pytest.param((4, 6, 3, 1, 1, 1, 1, False), id='k3-p1'),
    pytest.param((4, 6, 3, 2, 1, 1, 1, True), id='k3-s2-p1-bias'),
    pytest.param((4, 6, 3, 1, 0, 1, 1, False), id='k3-p0'),
    pytest.param((4, 6, 3, 1, 2, 1, 1, True), id='k3-p2-bias'),
    pytest.param((4, 6, 3, 1, 2, 2, 1, False), id='k3-d2-p2'),
    pytest.param((4, 6, 3, 1, 1, 1, 2, True), id='k3-g2-bias'),
    pytest.param((4, 4, 3, 2, 1, 1, 4, True), id='k3-dw-s2-bias'),
    pytest.param((4, 6, 1, 1, 0, 1, 1, True), id='k1-bias'),
    pytest.param((4, 6, 5, 2, 3, 1, 2, False), id='k5-s2-p3-g2'),
    pytest.param((4, 6, (3, 1), (2, 1), (1, 0), (1, 2), 1, True), id='k3x1-s2x1-d1x2-bias'),
]


def _pair(cls, geo, seed=0, x_hw=(9, 10), **kw):
    """Reference and fast layers with the same weights, and an input."""
    cin, cout, k, s, p, d, g, bias = geo
    kw.setdefault('kernel_num', 3)
    kw.setdefault('num_points', 5)
    kw.setdefault('temperature', 0.5)
    torch.manual_seed(seed)
    ref = cls(cin, cout, k, s, p, d, g, bias, impl='reference', **kw)
    fast = cls(cin, cout, k, s, p, d, g, bias, impl='fast',
               **{key: v for key, v in kw.items() if key != 'strategy'},
               strategy=kw.get('strategy', 'auto'))
    fast.load_state_dict(ref.state_dict())
    x = torch.randn(3, cin, *x_hw)
    return ref, fast, x


# ----------------------------------------------------------------- (a) fast == reference
@pytest.mark.parametrize('mode', ['train-random', 'train-fixed', 'train-none', 'eval'])
@pytest.mark.parametrize('geo', GEOMETRIES)
@pytest.mark.parametrize('cls', CLASSES)
def test_fast_equals_reference(cls, geo, mode):
    sampling = 'random' if mode == 'eval' else mode.split('-')[1]
    ref, fast, x = _pair(cls, geo, sampling=sampling)
    ref.train(mode != 'eval')
    fast.train(mode != 'eval')
    y_ref = seeded(1, ref, x)
    y_fast = seeded(1, fast, x)
    torch.testing.assert_close(y_fast, y_ref, **scale_tol(y_ref))


@pytest.mark.parametrize('mode', ['train-random', 'train-fixed', 'eval'])
@pytest.mark.parametrize('geo', [GEOMETRIES[1], GEOMETRIES[5], GEOMETRIES[9]])
@pytest.mark.parametrize('cls', CLASSES)
def test_attention_is_the_one_the_forward_uses(cls, geo, mode):
    """``layer.attention(x)`` (same RNG state) mixes the kernels into the forward's
    output, for both impls, and sums to 1 over the K kernels."""
    sampling = 'random' if mode == 'eval' else mode.split('-')[1]
    ref, fast, x = _pair(cls, geo, sampling=sampling)
    for layer in (ref, fast):
        layer.train(mode != 'eval')
        attn = seeded(1, layer.attention, x)
        assert attn.shape == (3, 3, geo[1])
        torch.testing.assert_close(attn.sum(1), torch.ones(3, geo[1]))
        y = seeded(1, layer, x)
        again = mixed_kernel_conv2d(x, attn, layer.weight, layer.bias, None, layer.stride,
                                    layer.padding, layer.dilation, layer.groups)
        torch.testing.assert_close(again, y, **scale_tol(y))


@pytest.mark.parametrize('geo', [GEOMETRIES[1], GEOMETRIES[5], GEOMETRIES[6], GEOMETRIES[8]])
@pytest.mark.parametrize('strategy', MIX_STRATEGIES)
@pytest.mark.parametrize('cls', CLASSES)
def test_fast_equals_reference_every_strategy(cls, strategy, geo):
    ref, fast, x = _pair(cls, geo, sampling='random', strategy=strategy)
    assert fast.strategy == strategy
    y_ref = seeded(2, ref, x)
    y_fast = seeded(2, fast, x)
    torch.testing.assert_close(y_fast, y_ref, **scale_tol(y_ref))


@cpu_only
@pytest.mark.parametrize('shape,expected', [((3, 8, 9, 10), 'loop'), ((3, 8, 6, 6), 'maps'),
                                            ((3, 8, 40, 40), 'grouped')])
def test_auto_strategy_paths_match_reference(shape, expected, monkeypatch):
    """'auto' picks loop / maps / grouped by map size on CPU; each path against the
    reference (the other geometries have 4 channels)."""
    from mmdyn.ops import batched_conv, fused_attention, select_strategy
    monkeypatch.setitem(batched_conv.STRATEGY_RULES, 'cpu', dataclasses.replace(
        batched_conv.STRATEGY_RULES['cpu'], grouped_below_kernel_elements=1))  # tiny kernels
    monkeypatch.setattr(fused_attention, 'ENABLED', False)  # else 'auto' fuses on CPU
    ref, fast, _ = _pair(A2D2CConv2d, (8, 6, 3, 1, 1, 1, 1, True), sampling='random')
    x = torch.randn(shape)
    assert select_strategy(x, fast.weight.shape[1:], shape[2:], maps_ok=True) == expected
    y_ref = seeded(3, ref, x)
    torch.testing.assert_close(seeded(3, fast, x), y_ref, **scale_tol(y_ref))


# ------------------------------------------------------------ (b) A2D2C == A2D2C+ (eval)
@pytest.mark.parametrize('impl', ['fast', 'reference'])
@pytest.mark.parametrize('geo', GEOMETRIES)
def test_a2d2c_equals_a2d2c_plus_in_eval(geo, impl):
    cin, cout, k, s, p, d, g, bias = geo
    torch.manual_seed(0)
    a = A2D2CConv2d(cin, cout, k, s, p, d, g, bias, kernel_num=3, temperature=0.5, impl=impl)
    b = A2D2CPlusConv2d(cin, cout, k, s, p, d, g, bias, kernel_num=3, temperature=0.5,
                        impl=impl)
    b.load_state_dict(a.state_dict())
    a.eval()
    b.eval()
    x = torch.randn(3, cin, 9, 10)
    y = a(x)
    torch.testing.assert_close(b(x), y, **scale_tol(y))


# ------------------------------------------------------------------- (c) determinism
@pytest.mark.parametrize('impl', ['fast', 'reference'])
@pytest.mark.parametrize('cls', CLASSES)
def test_eval_is_deterministic_and_random_training_is_not(cls, impl):
    torch.manual_seed(0)
    layer = cls(4, 6, 3, padding=1, kernel_num=4, num_points=5, temperature=0.1,
                sampling='random', impl=impl)
    x = torch.randn(2, 4, 12, 12)
    layer.eval()
    assert torch.equal(seeded(1, layer, x), seeded(2, layer, x))
    layer.train()
    y1, y2 = seeded(1, layer, x), seeded(2, layer, x)
    assert (y1 - y2).abs().max() > 1e-3 * y1.abs().max()
    assert torch.equal(y1, seeded(1, layer, x))  # same seed, same points


@pytest.mark.parametrize('cls', CLASSES)
def test_fixed_sampling_is_deterministic_in_training(cls):
    torch.manual_seed(0)
    layer = cls(4, 6, 3, padding=1, kernel_num=4, num_points=5, temperature=0.1,
                sampling='fixed')
    x = torch.randn(2, 4, 12, 12)
    assert torch.equal(seeded(1, layer, x), seeded(2, layer, x))
    assert layer.eval_sampling == 'fixed'


# --------------------------------------------------------------- (d) M >= H'W' = all
@pytest.mark.parametrize('extra_points', [0, 7], ids=['M=HW', 'M>HW'])
@pytest.mark.parametrize('sampling', ['random', 'fixed'])
@pytest.mark.parametrize('impl', ['fast', 'reference'])
@pytest.mark.parametrize('cls', CLASSES)
def test_enough_points_use_every_position(cls, impl, sampling, extra_points):
    hw = (4, 5)  # k3 p1 s1 -> H'W' = 20
    total = hw[0] * hw[1]
    assert sample_positions(2, hw, total + extra_points, sampling) is None
    torch.manual_seed(0)
    layer = cls(4, 6, 3, padding=1, kernel_num=4, num_points=total + extra_points,
                temperature=0.1, sampling=sampling, eval_sampling='none', impl=impl)
    x = torch.randn(2, 4, *hw)
    y_train = seeded(1, layer, x)
    layer.eval()
    torch.testing.assert_close(y_train, layer(x), rtol=0, atol=0)


def test_too_few_points_do_not_use_every_position():
    """Counterpart of the test above: with M < H'W' train differs from eval."""
    torch.manual_seed(0)
    layer = A2D2CConv2d(4, 6, 3, padding=1, kernel_num=4, num_points=19, temperature=0.1)
    x = torch.randn(2, 4, 4, 5)
    y_train = seeded(1, layer, x)
    layer.eval()
    assert not torch.allclose(y_train, layer(x))


# ------------------------------------------------------------ (e) sample_positions
@pytest.mark.parametrize('hw,m', [((12, 12), 5), ((3, 7), 20), ((1, 9), 1), ((10, 10), 99)],
                         ids=['12x12-M5', '3x7-M20', '1x9-M1', '10x10-M99'])
@pytest.mark.parametrize('mode', ['random', 'fixed'])
def test_sample_positions_contract(mode, hw, m):
    total = hw[0] * hw[1]
    torch.manual_seed(0)
    pos = sample_positions(4, hw, m, mode)
    assert pos.shape == (4, m) and pos.dtype == torch.long
    assert pos.min() >= 0 and pos.max() < total
    for row in pos:
        assert row.unique().numel() == m, f'repeated position in {row.tolist()}'
    if mode == 'fixed':
        assert (pos == pos[:1]).all()
        assert torch.equal(pos, sample_positions(4, hw, m, mode))
        assert pos[0, 0] == 0 and (m == 1 or pos[0, -1] == total - 1)  # evenly spread
        if m > 1:
            gaps = pos[0].diff().float()
            assert gaps.max() - gaps.min() <= 1
    elif m > 1:
        assert not (pos == pos[:1]).all(), 'random positions are the same for every image'
        assert not torch.equal(pos, sample_positions(4, hw, m, mode))


def test_sample_positions_random_is_uniform():
    torch.manual_seed(0)
    total, m, draws = 30, 3, 400
    counts = torch.zeros(total)
    for _ in range(draws):
        counts += torch.bincount(sample_positions(8, (5, 6), m, 'random').flatten(),
                                 minlength=total)
    expected = draws * 8 * m / total  # 320
    assert counts.min() > 0.75 * expected and counts.max() < 1.25 * expected


def test_sample_positions_none_mode():
    assert sample_positions(2, (12, 12), 5, 'none') is None


def test_draw_positions_follow_mode_and_output_size():
    layer = A2D2CConv2d(4, 6, 3, stride=2, padding=1, num_points=5, sampling='random')
    x = torch.randn(2, 4, 12, 12)  # H'W' = 36
    pos = layer.draw_positions(x)
    assert pos.shape == (2, 5) and pos.max() < 36
    layer.eval()
    assert layer.draw_positions(x) is None


# ---------------------------------------------------------- (f) mean_input_patches
# (kernel, stride, padding, dilation, H, W)
PATCH_CASES = [
    pytest.param((3, 3), (1, 1), (1, 1), (1, 1), 7, 8, id='k3-p1'),
    pytest.param((3, 3), (1, 1), (0, 0), (1, 1), 7, 8, id='k3-p0'),
    pytest.param((3, 3), (2, 2), (1, 1), (1, 1), 7, 8, id='k3-s2-p1'),
    pytest.param((3, 3), (3, 3), (1, 1), (1, 1), 10, 11, id='k3-s3'),
    pytest.param((3, 3), (1, 1), (2, 2), (2, 2), 7, 8, id='k3-d2-p2'),
    pytest.param((3, 3), (1, 1), (3, 3), (1, 1), 5, 6, id='k3-p3-big'),
    pytest.param((3, 3), (2, 2), (4, 4), (2, 2), 6, 7, id='k3-s2-d2-p4-big'),
    pytest.param((5, 5), (3, 3), (3, 3), (1, 1), 8, 9, id='k5-s3-p3-big'),
    pytest.param((3, 3), (3, 3), (4, 4), (1, 1), 2, 3, id='tap-never-inside'),
    pytest.param((3, 1), (2, 1), (1, 0), (1, 2), 7, 8, id='k3x1-s2x1-d1x2'),
    pytest.param((1, 1), (2, 2), (0, 0), (1, 1), 7, 8, id='k1-s2'),
]


def _unfold(x, k, s, p, d):
    cols = F.unfold(x, k, dilation=d, padding=p, stride=s)
    return cols.view(x.size(0), x.size(1), k[0] * k[1], -1)  # (B, C, kh*kw, H'W')


def _out_hw(h, w, k, s, p, d):
    return tuple((n + 2 * pp - dd * (kk - 1) - 1) // ss + 1
                 for n, kk, ss, pp, dd in zip((h, w), k, s, p, d))


@pytest.mark.parametrize('k,s,p,d,h,w', PATCH_CASES)
def test_mean_input_patches_all_positions(k, s, p, d, h, w):
    torch.manual_seed(0)
    x = torch.randn(2, 3, h, w, dtype=torch.float64)
    out_hw = _out_hw(h, w, k, s, p, d)
    expected = _unfold(x, k, s, p, d).mean(3)
    got = mean_input_patches(x, None, k, s, p, d, out_hw)
    assert got.shape == (2, 3, k[0] * k[1])
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('k,s,p,d,h,w', PATCH_CASES)
def test_mean_input_patches_selected_positions(k, s, p, d, h, w):
    torch.manual_seed(0)
    x = torch.randn(2, 3, h, w, dtype=torch.float64)
    out_hw = _out_hw(h, w, k, s, p, d)
    total = out_hw[0] * out_hw[1]
    m = max(1, total // 2)
    cols = _unfold(x, k, s, p, d)
    for mode in ('random', 'fixed'):
        pos = sample_positions(2, out_hw, m, mode) if m < total else \
            torch.stack([torch.randperm(total)[:m] for _ in range(2)])
        expected = torch.stack([cols[b][:, :, pos[b]].mean(2) for b in range(2)])
        got = mean_input_patches(x, pos, k, s, p, d, out_hw)
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ (g) eval_sampling
@pytest.mark.parametrize('impl', ['fast', 'reference'])
def test_eval_sampling_random_is_random(impl):
    torch.manual_seed(0)
    layer = A2D2CConv2d(4, 6, 3, padding=1, kernel_num=4, num_points=5, temperature=0.1,
                        eval_sampling='random', impl=impl).eval()
    x = torch.randn(2, 4, 12, 12)
    y1, y2 = seeded(1, layer, x), seeded(2, layer, x)
    assert (y1 - y2).abs().max() > 1e-3 * y1.abs().max()


@pytest.mark.parametrize('impl', ['fast', 'reference'])
@pytest.mark.parametrize('sampling', ['random', 'none'])
def test_eval_sampling_fixed_is_deterministic_and_differs_from_all(impl, sampling):
    torch.manual_seed(0)
    layer = A2D2CConv2d(4, 6, 3, padding=1, kernel_num=4, num_points=5, temperature=0.1,
                        sampling=sampling, eval_sampling='fixed', impl=impl)
    x = torch.randn(2, 4, 12, 12)
    all_pos = A2D2CConv2d(4, 6, 3, padding=1, kernel_num=4, num_points=5, temperature=0.1,
                          eval_sampling='none', impl=impl)
    all_pos.load_state_dict(layer.state_dict())
    layer.eval()
    all_pos.eval()
    y1 = seeded(1, layer, x)
    assert torch.equal(y1, seeded(2, layer, x))
    assert not torch.allclose(y1, all_pos(x))  # 5 fixed points != global mean


@pytest.mark.parametrize('sampling,expected', [('random', 'none'), ('fixed', 'fixed'),
                                               ('none', 'none')])
def test_default_eval_sampling(sampling, expected):
    assert A2D2CConv2d(4, 4, 3, sampling=sampling).eval_sampling == expected


# ------------------------------------------------------------------- (h) gradients
def _oracle(x, weight, bias, positions, temperature, stride, padding, dilation, groups,
            detach_attention=False):
    """Independent A2D2C: K convs, mean of each map over the sampled positions (per
    sample and output channel), softmax over K, per-sample mixed kernel, conv."""
    maps = [F.conv2d(x, weight[k], None if bias is None else bias[k], stride, padding,
                     dilation, groups) for k in range(weight.size(0))]
    outs = []
    for b in range(x.size(0)):
        logits = []
        for fmap in maps:
            flat = fmap[b].flatten(1)                         # (C_out, H'W')
            logits.append(flat.mean(1) if positions is None else flat[:, positions[b]].mean(1))
        attn = torch.softmax(torch.stack(logits) / temperature, dim=0)   # (K, C_out)
        if detach_attention:
            attn = attn.detach()
        kernel = (attn[:, :, None, None, None] * weight).sum(0)
        b_mix = None if bias is None else (attn * bias).sum(0)
        outs.append(F.conv2d(x[b:b + 1], kernel, b_mix, stride, padding, dilation, groups))
    return torch.cat(outs)


@pytest.mark.parametrize('geo', [GEOMETRIES[1], GEOMETRIES[4], GEOMETRIES[5], GEOMETRIES[6]])
@pytest.mark.parametrize('cls', CLASSES)
def test_gradients_fast_reference_and_oracle(cls, geo):
    cin, cout, k, s, p, d, g, bias = geo
    ref, fast, _ = _pair(cls, geo, sampling='random', temperature=0.3)
    ref.double()
    fast.double()
    torch.manual_seed(5)
    x = torch.randn(3, cin, 9, 10, dtype=torch.float64)
    gout = None
    grads = []
    for layer in (ref, fast):
        xi = x.clone().requires_grad_()
        y = seeded(7, layer, xi)
        if gout is None:
            gout = torch.randn_like(y)
        (y * gout).sum().backward()
        grads.append((y.detach(), xi.grad, layer.weight.grad,
                      None if layer.bias is None else layer.bias.grad))
        for t in grads[-1]:
            assert t is None or torch.isfinite(t).all()
    for a, b in zip(*grads):
        if a is not None:
            torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-9)

    # the same positions the layers drew
    torch.manual_seed(7)
    pos = ref.draw_positions(x)
    w = ref.weight.detach().clone().requires_grad_()
    bvec = None if ref.bias is None else ref.bias.detach().clone().requires_grad_()
    y = _oracle(x, w, bvec, pos, ref.temperature, ref.stride, ref.padding, ref.dilation, g)
    torch.testing.assert_close(y, grads[0][0], rtol=1e-9, atol=1e-9)
    (y * gout).sum().backward()
    torch.testing.assert_close(grads[0][2], w.grad, rtol=1e-9, atol=1e-9)
    if bvec is not None:
        torch.testing.assert_close(grads[0][3], bvec.grad, rtol=1e-9, atol=1e-9)

    # the attention path carries a real part of the weight gradient
    w2 = ref.weight.detach().clone().requires_grad_()
    y2 = _oracle(x, w2, None if bvec is None else bvec.detach(), pos, ref.temperature,
                 ref.stride, ref.padding, ref.dilation, g, detach_attention=True)
    (y2 * gout).sum().backward()
    diff = (w2.grad - grads[0][2]).abs().max()
    assert diff > 1e-3 * grads[0][2].abs().max(), 'no gradient through the attention'
