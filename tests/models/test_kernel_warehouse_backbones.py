"""KernelWarehouse in the dynamic backbones (Li, Yao, "KernelWarehouse:
Rethinking the Design of Dynamic Convolution", ICML 2024): parameter counts of
the official code, warehouse structure and sharing, both frameworks,
``frozen_stages``/``norm_eval``, checkpoints and static-checkpoint
initialisation. Tiny inputs (32 x 32)."""
import pytest
import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from _backbone_helpers import build_cls, build_det, forward_backward, randomised_static_resnet
from mmdyn.engine.hooks import set_model_temperature
from mmdyn.ops import KWConv2d

KW = dict(type='KW')
HALF = dict(cell_num_ratio=0.5, cell_inplane_ratio=0.5, cell_outplane_ratio=0.5)
#: The official MobileNetV2 0.5 KW 1/2x backbone (its classifier is a KWLinearClsHead).
MBV2_HALF = dict(type='KW', reduction=0.03125, sharing_range=('layer', ),
                 static_warehouses=['stage[1-5]_layer_pwconv*'],
                 warehouse_overrides=dict(stage6_layer_pwconv0=HALF, stage6_layer_pwconv1=HALF))
R18_CELLS = [(56, 64, 64, 1, 1), (47, 128, 128, 1, 1), (47, 256, 256, 1, 1),
             (27, 512, 512, 1, 1)]


def classifier(backbone: dict, head: dict):
    """mmpretrain ImageClassifier (GAP neck), built from dicts, no init_weights."""
    from mmpretrain.registry import MODELS
    return MODELS.build(dict(type='ImageClassifier', backbone=backbone,
                             neck=dict(type='GlobalAveragePooling'), head=head))


def linear_head(in_channels: int) -> dict:
    return dict(type='LinearClsHead', num_classes=1000, in_channels=in_channels)


def kw_layers(model):
    return [m for m in model.modules() if isinstance(m, KWConv2d)]


# --------------------------------------------------------------- official counts
@pytest.mark.parametrize('backbone,head,official', [
    (dict(type='DynResNet', depth=18, dyn_conv=KW), linear_head(512), 11_932_148),
    (dict(type='DynResNet', depth=18, dyn_conv=dict(
        type='KW', cell_num_ratio=0.25, cell_inplane_ratio=0.5, cell_outplane_ratio=0.5)),
     linear_head(512), 4_031_768),
    (dict(type='DynMobileNetV2', widen_factor=0.5, dyn_conv=dict(type='KW', cell_num_ratio=1)),
     linear_head(1280), 2_854_522),
    (dict(type='DynMobileNetV2', widen_factor=0.5,
          dyn_conv=dict(type='KW', cell_num_ratio=4, sharing_range=('layer', ))),
     linear_head(1280), 4_648_587),
    (dict(type='DynMobileNetV2', widen_factor=0.5, dyn_conv=MBV2_HALF),
     dict(type='KWLinearClsHead', num_classes=1000, in_channels=1280, dropout=0.1), 1_466_888),
], ids=['R18-1x', 'R18-1/4x', 'MBv2-0.5-1x', 'MBv2-0.5-4x', 'MBv2-0.5-1/2x'])
def test_parameter_counts_equal_the_official_code(backbone, head, official):
    model = classifier(backbone, head)
    assert sum(p.numel() for p in model.parameters()) == official


def test_resnet_warehouses_names_and_hand_over():
    model = classifier(dict(type='DynResNet', depth=18, dyn_conv=KW), linear_head(512))
    backbone, wh = model.backbone, model.backbone.kw_warehouse
    assert wh.names() == [f'stage{s}_layer_conv' for s in range(4)]
    assert [tuple(wh.cells[n].shape) for n in wh.names()] == R18_CELLS
    assert type(backbone.conv1) is nn.Conv2d                        # stem static
    # the first convolutions of stage 1 draw from stage 0's warehouse (official hand-over)
    for name in ('layer2.0.conv1', 'layer2.0.downsample.0'):
        layer = backbone.get_submodule(name)
        assert isinstance(layer, KWConv2d) and layer.warehouse_name == 'stage0_layer_conv'
        assert layer.cells is wh.cells['stage0_layer_conv']
    assert backbone.layer2[0].conv2.warehouse_name == 'stage1_layer_conv'
    # the cells are in the state dict once, under the warehouse, none under a layer
    state = model.state_dict()
    assert [k for k in state if 'cells' in k or 'warehouse' in k] == [
        f'backbone.kw_warehouse.cells.{n}' for n in wh.names()]
    assert not any(k.startswith(f'backbone.{n}.') and not k.endswith('temperature')
                   and '.attention_net.' not in k for k in state for n in backbone.dyn_conv_names)

    r50 = build_cls(depth=50, dyn_conv=KW)
    # a Bottleneck's first conv1 and stride-1 downsample of stage 0 have no earlier stage
    assert type(r50.layer1[0].conv1) is nn.Conv2d
    assert type(r50.layer1[0].downsample[0]) is nn.Conv2d
    assert r50.layer2[0].conv1.warehouse_name == 'stage0_layer_conv'
    assert r50.layer2[0].downsample[0].warehouse_name == 'stage0_layer_conv'


def test_layers_of_a_stage_share_and_train_one_parameter():
    model = build_cls(depth=18, dyn_conv=KW).train()
    a, b = model.layer1[0].conv1, model.layer1[1].conv2
    cells = model.kw_warehouse.cells['stage0_layer_conv']
    assert a.cells is cells and b.cells is cells
    assert sum(p is cells for p in model.parameters()) == 1
    x = torch.randn(2, 64, 8, 8)

    def cell_grad(*layers):
        cells.grad = None
        sum(layer(x).pow(2).mean() for layer in layers).backward()
        return cells.grad.clone()

    grad_a, grad_b, grad_ab = cell_grad(a), cell_grad(b), cell_grad(a, b)
    assert grad_a.abs().sum() > 0 and grad_b.abs().sum() > 0
    torch.testing.assert_close(grad_ab, grad_a + grad_b)    # both layers accumulate into it
    assert not torch.allclose(grad_ab, grad_a) and not torch.allclose(grad_ab, grad_b)


# ------------------------------------------------------------------- frameworks
def kw_grads(model):
    """Every KW tensor (cells, attentions) got a gradient, every warehouse a
    non-zero one (the last stage is an output: every layer is used)."""
    params = [model.kw_warehouse.cells[n] for n in model.kw_warehouse.names()]
    params += [p for m in kw_layers(model) for p in m.parameters()]
    return all(p.grad is not None for p in params) and \
        all(model.kw_warehouse.cells[n].grad.abs().sum() > 0 for n in model.kw_warehouse.names())


@pytest.mark.parametrize('depth,out_indices,shapes', [
    (18, (1, 3), [(2, 128, 4, 4), (2, 512, 1, 1)]),
    (50, (0, 3), [(2, 256, 8, 8), (2, 2048, 1, 1)]),
])
def test_mmdet_resnet(depth, out_indices, shapes):
    model = build_det(depth=depth, out_indices=out_indices, dyn_conv=KW)
    outs = forward_backward(model, torch.randn(2, 3, 32, 32))
    assert [tuple(o.shape) for o in outs] == shapes
    assert kw_grads(model)


@pytest.mark.parametrize('framework,type_,options,shapes', [
    ('mmpretrain', 'DynResNet', dict(depth=18, out_indices=(0, 3)),
     [(2, 64, 8, 8), (2, 512, 1, 1)]),
    ('mmpretrain', 'DynResNetCIFAR', dict(depth=18, out_indices=(1, 3)),
     [(2, 128, 16, 16), (2, 512, 4, 4)]),
    ('mmpretrain', 'DynMobileNetV2', dict(widen_factor=0.5, out_indices=(1, 7)),
     [(2, 16, 8, 8), (2, 1280, 1, 1)]),
    ('mmdet', 'DynMobileNetV2', dict(widen_factor=0.5, out_indices=(2, 7)),
     [(2, 16, 4, 4), (2, 1280, 1, 1)]),
])
def test_classification_and_mobilenet_backbones(framework, type_, options, shapes):
    registry = __import__(f'{framework}.registry', fromlist=['MODELS']).MODELS
    model = registry.build(dict(type=type_, dyn_conv=KW, **options))
    outs = forward_backward(model, torch.randn(2, 3, 32, 32))
    assert [tuple(o.shape) for o in outs] == shapes
    assert kw_grads(model)
    if type_ == 'DynMobileNetV2':
        assert isinstance(model.conv1.conv, KWConv2d)            # official: the stem too


# --------------------------------------------------------- frozen stages, norm_eval
FROZEN = {  # builder, frozen parameter prefixes, warehouses of the frozen layers
    'mmdet-ResNet18': (lambda **kw: build_det(depth=18, out_indices=(0, 3), **kw),
                       ('conv1.', 'bn1.', 'layer1.'), {'stage0_layer_conv'}),
    'mmpretrain-MobileNetV2': (
        lambda **kw: build_cls('DynMobileNetV2', widen_factor=0.5, out_indices=(0, 7), **kw),
        ('conv1.', 'layer1.'), {'stage0_conv0', 'stage1_layer_dwconv0', 'stage1_layer_pwconv'}),
}


@pytest.mark.parametrize('arch', list(FROZEN))
def test_frozen_stage_and_its_warehouses_do_not_train(arch):
    build, prefixes, frozen_wh = FROZEN[arch]
    model = build(frozen_stages=1, dyn_conv=KW)
    model.train()
    wh = model.kw_warehouse
    assert {m.warehouse_name for n, m in model.dyn_modules().items()
            if n.startswith(prefixes)} == frozen_wh
    for name, p in model.named_parameters():
        frozen = name.startswith(prefixes) or name in {f'kw_warehouse.cells.{w}'
                                                       for w in frozen_wh}
        assert p.requires_grad is not frozen, name
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        before = [o.clone() for o in model(x)]
    frozen_cells = {w: wh.cells[w].detach().clone() for w in frozen_wh}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    for step in range(3):
        optimizer.zero_grad()
        sum(o.pow(2).mean() for o in model(torch.randn(4, 3, 32, 32))).backward()
        optimizer.step()
    with torch.no_grad():
        after = model(x)
    assert torch.equal(after[0], before[0])                  # the frozen stage
    assert not torch.allclose(after[-1], before[-1])          # a later stage trained
    assert all(torch.equal(wh.cells[w], c) for w, c in frozen_cells.items())


@pytest.mark.parametrize('arch', list(FROZEN))
def test_norm_eval_covers_the_attention_batchnorms(arch):
    build = FROZEN[arch][0]
    model = build(norm_eval=True, dyn_conv=KW)
    model.train()
    attention_bns = [m.attention_net.norm for m in kw_layers(model)]
    assert attention_bns and all(isinstance(bn, _BatchNorm) for bn in attention_bns)
    assert all(not m.training for m in model.modules() if isinstance(m, _BatchNorm))
    model = build(norm_eval=False, dyn_conv=KW)
    model.train()
    assert all(m.attention_net.norm.training for m in kw_layers(model))


# ------------------------------------------------------------------ checkpoints
def test_state_dict_round_trip_keeps_outputs_and_temperature(tmp_path):
    model = build_cls(depth=18, out_indices=(1, 3), dyn_conv=KW)
    assert set_model_temperature(model, 0.37) == len(model.dyn_conv_names)
    path = tmp_path / 'kw.pth'
    torch.save(model.state_dict(), path)
    x = torch.randn(2, 3, 32, 32)
    torch.manual_seed(1)
    fresh = build_cls(depth=18, out_indices=(1, 3), dyn_conv=KW).eval()
    with torch.no_grad():
        expected, unloaded = model.eval()(x), fresh(x)
    assert not torch.allclose(unloaded[-1], expected[-1])
    fresh.load_state_dict(torch.load(path, weights_only=True), strict=True)
    assert [m.temperature for m in kw_layers(fresh)] == [0.37] * len(fresh.dyn_conv_names)
    with torch.no_grad():
        got = fresh(x)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=0, atol=0)


@pytest.fixture(scope='module')
def static18(tmp_path_factory):
    """A static mmpretrain ResNet-18 (random init, random BN statistics so that
    no branch is trivial), its checkpoint and its outputs on a fixed input."""
    torch.manual_seed(1)
    model = randomised_static_resnet(18, out_indices=(0, 1, 2, 3))
    path = str(tmp_path_factory.mktemp('static') / 'r18.pth')
    torch.save(dict(state_dict={f'backbone.{k}': v for k, v in model.state_dict().items()}),
               path)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        return path, x, model(x)


@pytest.mark.parametrize('cell_num_ratio', [1, 4])
def test_static_checkpoint_initialises_kw_exactly(static18, cell_num_ratio):
    path, x, expected = static18
    model = build_cls(depth=18, out_indices=(0, 1, 2, 3),
                      dyn_conv=dict(type='KW', cell_num_ratio=cell_num_ratio),
                      init_cfg=dict(type='Pretrained', checkpoint=path))
    with torch.no_grad():
        assert not torch.allclose(model.eval()(x)[-1], expected[-1], atol=1e-3)
    model.init_weights()
    layers = kw_layers(model)
    assert len(layers) == 19 and all(m.temperature == 1.0 for m in layers)
    with torch.no_grad():
        got = model.eval()(x)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=0, atol=1e-5)


def test_static_checkpoint_into_fewer_cells_is_refused(static18):
    model = build_cls(depth=18, dyn_conv=dict(type='KW', **HALF),
                      init_cfg=dict(type='Pretrained', checkpoint=static18[0]))
    with pytest.raises(ValueError, match=r'cell_num_ratio=0\.5.*train KW 0\.5x from scratch '
                                         r'or load a KW checkpoint'):
        model.init_weights()
