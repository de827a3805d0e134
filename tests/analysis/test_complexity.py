"""The traced MAdds counter against closed-form per-layer formulas.

If the extra op handles miss an op, double-count one, or the formulas drift from
the code in ``mmdyn.ops``, the traced and analytic counts disagree here.
"""
import pytest
import torch
import torch.nn as nn

from mmdyn.analysis import (PAPER_FIGURES, TraceError, analytic_madds, count_complexity,
                            match_paper_row)
from mmdyn.ops import (A2D2CConv2d, A2D2CPlusConv2d, CondConv2d, DCDConv2d, DynamicConv2d,
                       KernelWarehouse, KWConv2d, ODConv2d)

HW = (10, 10)


def _layers():
    return {
        'static': nn.Conv2d(16, 32, 3, padding=1),
        'a2d2c': A2D2CConv2d(16, 32, 3, padding=1, num_points=20),
        'a2d2c_plus_bias_s2': A2D2CPlusConv2d(16, 32, 3, stride=2, padding=1, bias=True,
                                              num_points=10),
        'a2d2c_fixed': A2D2CPlusConv2d(16, 32, 3, padding=1, num_points=20, sampling='fixed'),
        'a2d2c_ref': A2D2CConv2d(16, 32, 3, padding=1, num_points=20, impl='reference'),
        'a2d2c_plus_ref': A2D2CPlusConv2d(16, 32, 3, padding=1, num_points=20,
                                          impl='reference'),
        'odconv': ODConv2d(16, 32, 3, padding=1),
        'odconv_dw': ODConv2d(16, 16, 3, padding=1, groups=16),
        'odconv_1x1': ODConv2d(16, 32, 1),
        'dyconv': DynamicConv2d(16, 32, 3, padding=1, bias=True),
        'condconv': CondConv2d(16, 32, 3, padding=1),
        'dcd': DCDConv2d(16, 32, 3, stride=2, padding=1),
        'kw': KWConv2d(16, 32, 3, padding=1),
        'kw_blend_bias_s2': KWConv2d(16, 32, 3, stride=2, padding=1, bias=True, temperature=0.5),
        'kw_dw': KWConv2d(16, 16, 3, padding=1, groups=16),
        'kw_4x_whole_kernel_cells': KWConv2d(16, 32, 3, padding=1, cell_num_ratio=4.0,
                                             spatial_partition=False),
    }


class _SharedKW(nn.Module):
    """The first of two layers sharing a KW 1/2x warehouse with a non-local basis,
    with the warehouse as a child (as in a backbone: the counter traces the cells as
    parameters)."""

    def __init__(self):
        super().__init__()
        self.warehouse = KernelWarehouse(cell_num_ratio=0.5, cell_inplane_ratio=0.5,
                                         cell_outplane_ratio=0.5, nonlocal_basis_ratio=0.5)
        self.layer = KWConv2d(16, 32, 3, padding=1, warehouse=self.warehouse)
        self.other = KWConv2d(32, 32, 3, padding=1, warehouse=self.warehouse)
        self.warehouse.build()

    def forward(self, x):
        return self.layer(x)


CASES = [(name, mode, batch) for name in _layers() for mode in ('eval', 'train')
         for batch in (1, 3)]


@pytest.mark.parametrize('name,mode,batch', CASES)
def test_traced_matches_analytic(name, mode, batch):
    torch.manual_seed(0)
    layer = _layers()[name]
    res = count_complexity(layer, (batch, 16, *HW), mode=mode)
    ana = analytic_madds(layer, HW, batch=batch, training=mode == 'train')
    assert res.unsupported_ops == {}, res.unsupported_ops
    # The whole layer, and what the dynamic part adds on top of the convolution
    # (the part a conv-only counter gets wrong) must both agree.
    assert res.madds == pytest.approx(ana['total'], rel=0.01)
    extra_traced = res.madds - res.by_operator.get('conv', 0)
    extra_ana = ana['total'] - ana['conv'] - ana.get('conv_1x1', 0)
    assert extra_traced == pytest.approx(extra_ana, rel=0.02, abs=8)
    if name != 'static':
        assert extra_ana > 0


@pytest.mark.parametrize('mode', ['eval', 'train'])
@pytest.mark.parametrize('batch', [1, 3])
@pytest.mark.parametrize('name', [n for n in _layers() if n.startswith('kw')] + ['kw_shared'])
def test_kw_traced_equals_analytic_exactly(name, batch, mode):
    """KW's formula follows its forward op by op (the normalisation, the blend, the
    non-local basis, BatchNorm at batch 1): no tolerance."""
    torch.manual_seed(0)
    model = _SharedKW() if name == 'kw_shared' else _layers()[name]
    layer = model.layer if name == 'kw_shared' else model
    assert name != 'kw_shared' or layer.attention_net.fc3 is not None
    res = count_complexity(model, (batch, 16, *HW), mode=mode)
    ana = analytic_madds(layer, HW, batch=batch, training=mode == 'train')
    assert res.unsupported_ops == {}, res.unsupported_ops
    assert res.madds == ana['total']
    assert res.by_operator['conv'] == ana['conv']


def test_a2d2c_cost_breakdown_matches_reference_formula():
    """docs/a2d2c_fidelity.md: fast path = one conv + logits + aggregation (each
    K*kernel); the literal A2D2C+ costs K convolutions, A2D2C K+1."""
    kernel, positions, k = 32 * 16 * 9, HW[0] * HW[1], 4
    fast = analytic_madds(A2D2CPlusConv2d(16, 32, 3, padding=1), HW)
    assert fast['conv'] == kernel * positions
    assert fast['aggregation'] == k * kernel
    assert fast['attention'] >= k * kernel
    plus_ref = analytic_madds(A2D2CPlusConv2d(16, 32, 3, padding=1, impl='reference'), HW)
    ref = analytic_madds(A2D2CConv2d(16, 32, 3, padding=1, impl='reference'), HW)
    assert plus_ref['conv'] == k * kernel * positions
    assert ref['conv'] == (k + 1) * kernel * positions


def test_plain_mmengine_misses_dynamic_work():
    """docs/analysis_tools.md: the stock counter misses the aggregation of dynamic convs."""
    x_shape = (1, 16, *HW)
    static = count_complexity(nn.Conv2d(16, 32, 3, padding=1), x_shape)
    assert static.madds == static.madds_mmengine
    for layer in (A2D2CPlusConv2d(16, 32, 3, padding=1), DynamicConv2d(16, 32, 3, padding=1),
                  ODConv2d(16, 32, 3, padding=1), CondConv2d(16, 32, 3, padding=1)):
        res = count_complexity(layer, x_shape)
        aggregation = analytic_madds(layer, HW)['aggregation']
        assert res.madds - res.madds_mmengine >= aggregation, type(layer).__name__


def test_train_mode_counts_sampling_and_leaves_model_untouched():
    # strategy='loop': the patch-mean path (with 'auto', an 8x8 map in training uses
    # 'maps', which reads p̄ off the K maps instead; see the next test).
    model = nn.Sequential(A2D2CPlusConv2d(8, 8, 3, padding=1, num_points=5, strategy='loop'),
                          nn.BatchNorm2d(8)).eval()
    before = model[1].running_mean.clone()
    res = count_complexity(model, (2, 8, 8, 8), mode='train')
    assert res.by_operator.get('bmm', 0) == 2 * 8 * 64 * 9      # selection-matrix bmm
    assert res.by_operator.get('scatter_add_', 0) == 2 * 5 * 9
    assert res.by_operator.get('topk', 0) == 2 * 64
    assert not model.training and torch.equal(model[1].running_mean, before)
    ev = count_complexity(model, (2, 8, 8, 8), mode='eval')
    assert 'bmm' not in ev.by_operator and 'sum' in ev.by_operator


def test_train_mode_maps_strategy_matches_analytic():
    layer = A2D2CPlusConv2d(8, 8, 3, padding=1, num_points=5)  # auto -> maps (8x8, train)
    res = count_complexity(layer, (2, 8, 8, 8), mode='train')
    expected = analytic_madds(layer, (8, 8), batch=2, training=True)
    assert 'patch_mean' not in expected
    assert expected['conv'] == 4 * 2 * 8 * 8 * 9 * 64  # K convolutions in one
    assert res.by_operator.get('bmm', 0) == 0 and res.by_operator.get('scatter_add_', 0) == 0
    assert abs(res.madds - expected['total']) <= 0.01 * expected['total']


def test_resnet18_classifier_anchor():
    """Static ResNet-18 at 224x224: 11.69M params, ~1.82 GMAdds (fvcore/mmengine)."""
    from mmengine.registry import init_default_scope
    init_default_scope('mmpretrain')
    from mmpretrain.registry import MODELS
    model = MODELS.build(dict(type='ImageClassifier', backbone=dict(type='ResNet', depth=18),
                              neck=dict(type='GlobalAveragePooling'),
                              head=dict(type='LinearClsHead', num_classes=1000,
                                        in_channels=512)))
    res = count_complexity(model, (1, 3, 224, 224), forward=lambda m, x: m(x, mode='tensor'))
    assert res.params / 1e6 == pytest.approx(11.69, abs=0.005)
    assert res.madds / 1e9 == pytest.approx(1.82, abs=0.01)
    names = [n for n, *_ in res.top_level()]
    assert {'backbone', 'neck', 'head'} <= set(names)


def test_errors():
    class Untraceable(nn.Module):
        def forward(self, x):
            return {'not': 'a tensor', 'y': x.sum().item()}

    with pytest.raises(TraceError, match='cannot trace'):
        count_complexity(Untraceable(), (1, 3, 4, 4))
    with pytest.raises(ValueError, match='mode'):
        count_complexity(nn.Conv2d(3, 3, 1), (1, 3, 4, 4), mode='bogus')
    with pytest.raises(ValueError, match='input_shape'):
        count_complexity(nn.Conv2d(3, 3, 1), (3, ))
    with pytest.raises(TypeError, match='analytic_madds supports'):
        analytic_madds(nn.Linear(3, 3), (4, 4))


def test_analytic_madds_reads_the_layer_own_formula():
    """No list of layer classes: any module with ``madds`` is counted by it."""
    class Custom(nn.Module):
        def madds(self, input_hw, batch=1, training=False):
            return {'conv': batch * input_hw[0] * input_hw[1], 'attention': 3 + training}

    assert analytic_madds(Custom(), (4, 5), batch=2, training=True) == {
        'conv': 40, 'attention': 4, 'total': 44}
    layer = ODConv2d(16, 32, 3, padding=1)
    assert analytic_madds(layer, HW, 3) == {**layer.madds(HW, 3), 'total': sum(
        layer.madds(HW, 3).values())}


@pytest.mark.parametrize('name,key', [
    ('configs/a2d2c/resnet18_a2d2c-plus_4x_in1k.py', ('resnet18', 'a2d2cplus', 'imagenet')),
    ('resnet50_a2d2c_4xb64_in1k.py', ('resnet50', 'a2d2c', 'imagenet')),
    ('resnet18_condconv_cifar100.py', ('resnet18', 'condconv', 'cifar')),
    ('mobilenet-v2-0.5x_odconv_in1k.py', ('mobilenetv2_0.5', 'odconv', 'imagenet')),
    ('mask-rcnn_r50_fpn_a2d2c-plus_1x_coco.py', ('mask-rcnn_r50_fpn', 'a2d2cplus', 'coco')),
    ('resnet18_8xb32_in1k.py', ('resnet18', 'static', 'imagenet')),
    ('resnet101_a2d2c_in1k.py', None),
])
def test_match_paper_row(name, key):
    row = match_paper_row(name)
    assert (row[0] if row else None) == key
    if key is not None:
        assert row[1] is PAPER_FIGURES[key]


def test_paper_figures_from_reference():
    assert PAPER_FIGURES[('resnet18', 'a2d2c', 'imagenet')]['madds'] == 1.926
    assert PAPER_FIGURES[('resnet50', 'a2d2cplus', 'imagenet')]['madds'] == 4.095
    assert PAPER_FIGURES[('mask-rcnn_r50_fpn', 'a2d2cplus', 'coco')]['params'] == 110.24
