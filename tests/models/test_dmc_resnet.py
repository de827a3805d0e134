"""DMCResNet / DMCResNetCIFAR (dynamic mask convolution), block plugins and the fusion neck
(multi-scale fusion blog; docs/references.md)."""
import pytest
import torch
import torch.nn as nn

import mmdyn.models  # noqa: F401  (registers)
from mmdyn.models.backbones import ResidualPlugins
from mmdyn.ops import AdaptiveEnhancement, DynamicMaskConv2d, MultiScaleFeatureFusion


def _build(cfg, scope='mmpretrain'):
    from mmengine.registry import init_default_scope
    init_default_scope(scope)
    if scope == 'mmdet':
        from mmdet.registry import MODELS
    else:
        from mmpretrain.registry import MODELS
    torch.manual_seed(0)
    return MODELS.build(cfg)


TINY = dict(depth=18, num_stages=2, strides=(1, 2), dilations=(1, 1), out_indices=(0, 1),
            stem_channels=8, base_channels=8)


def _blocks(model):
    return [block for name in model.res_layers for block in getattr(model, name)]


@pytest.mark.parametrize('kind, size', [('DMCResNetCIFAR', 16), ('DMCResNet', 32)])
@pytest.mark.parametrize('depth', [18, 50])
def test_forward_backward_shapes(kind, size, depth):
    model = _build(dict(TINY, type=kind, depth=depth))
    model.init_weights()
    x = torch.randn(2, 3, size, size)
    outs = model(x)
    expansion = 4 if depth == 50 else 1
    stem_stride = 1 if kind == 'DMCResNetCIFAR' else 4
    hw = size // stem_stride
    assert [tuple(o.shape) for o in outs] == [(2, 8 * expansion, hw, hw),
                                              (2, 16 * expansion, hw // 2, hw // 2)]
    sum(o.sum() for o in outs).backward()
    for block in _blocks(model):
        assert isinstance(block.conv2, DynamicMaskConv2d)
        assert not isinstance(block.conv1, DynamicMaskConv2d)
        assert isinstance(block.residual_plugins, ResidualPlugins)
        (plugin, ) = block.residual_plugins
        assert isinstance(plugin, AdaptiveEnhancement)
        assert plugin.in_channels == block.out_channels
        assert all(p.grad is not None for p in block.conv2.parameters())
        assert all(p.grad is not None for p in plugin.parameters())


def test_batch_size_one_in_training():
    model = _build(dict(TINY, type='DMCResNetCIFAR'))
    model.train()
    out = model(torch.randn(1, 3, 16, 16))
    assert out[-1].shape == (1, 16, 8, 8)


def test_enhancement_is_applied_before_the_residual_sum():
    """A plugin that zeroes the residual branch leaves relu(identity): it acts
    before `out += identity` (after, the output would be zero)."""
    model = _build(dict(TINY, type='DMCResNetCIFAR'))
    model.eval()
    block = model.layer1[1]  # stride 1, no downsample
    block.residual_plugins[0] = _Zero()
    x = torch.randn(2, 8, 8, 8)
    assert torch.equal(block(x), torch.relu(x))


class _Zero(nn.Module):
    def forward(self, x):
        return x * 0


def test_zero_init_residual_makes_blocks_identity():
    model = _build(dict(TINY, type='DMCResNetCIFAR', zero_init_residual=True))
    model.init_weights()
    model.eval()
    x = torch.randn(2, 8, 8, 8)
    assert torch.allclose(model.layer1[0](x), torch.relu(x))


def test_enhance_none_and_options_are_passed():
    model = _build(dict(TINY, type='DMCResNetCIFAR', enhance=None,
                        dyn_conv=dict(type='DMC', branch_dilations=(1, 2), mask='channel',
                                      fusion='sum')))
    assert model.block_plugin_names == []
    for block in _blocks(model):
        assert not hasattr(block, 'residual_plugins')
        assert block.conv2.branch_dilations == (1, 2) and block.conv2.mask == 'channel'
    model = _build(dict(TINY, type='DMCResNetCIFAR', stage_with_dyn=(False, True),
                        enhance=dict(type='AdaptiveEnhancement', mode='parallel')))
    assert all(n.startswith('layer2.') for n in model.block_plugin_names + model.dyn_conv_names)
    assert model.layer2[0].residual_plugins[0].mode == 'parallel'


def test_placement_preset_moves_the_enhancement_with_the_dmc_layers():
    model = _build(dict(TINY, type='DMCResNetCIFAR', dyn_placement='terminal'))
    assert model.dyn_conv_names == ['layer2.0.conv1', 'layer2.0.conv2', 'layer2.1.conv1',
                                    'layer2.1.conv2']
    assert model.block_plugin_names == ['layer2.0.residual_plugins.0',
                                        'layer2.1.residual_plugins.0']
    with pytest.raises(ValueError, match='conflicts with the explicit dyn_convs'):
        _build(dict(TINY, type='DMCResNetCIFAR', dyn_placement='terminal', dyn_convs=('conv2', )))


def test_static_params_are_mmpretrain_resnet_cifar_params():
    """Everything outside the DMC convs and the plugins is the framework's network."""
    dmc = _build(dict(TINY, type='DMCResNetCIFAR'))
    static = _build(dict(TINY, type='ResNet_CIFAR'))
    dmc_shapes = {k: v.shape for k, v in dmc.state_dict().items()
                  if '.conv2.' not in k and '.residual_plugins.' not in k}
    static_shapes = {k: v.shape for k, v in static.state_dict().items() if '.conv2.' not in k}
    assert dmc_shapes == static_shapes


def test_frozen_stages_and_norm_eval_cover_the_new_modules():
    model = _build(dict(TINY, type='DMCResNetCIFAR', frozen_stages=1, norm_eval=True))
    model.train()
    stage1 = model.layer1
    assert not any(p.requires_grad for p in stage1.parameters())
    assert all(p.requires_grad for p in model.layer2.parameters())
    assert not stage1.training
    assert all(not m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d))


def test_state_dict_roundtrip():
    a = _build(dict(TINY, type='DMCResNetCIFAR'))
    torch.manual_seed(3)
    b = _build(dict(TINY, type='DMCResNetCIFAR'))
    for p in b.parameters():
        nn.init.normal_(p)
    b.load_state_dict(a.state_dict())
    a.eval(), b.eval()
    x = torch.randn(1, 3, 16, 16)
    assert torch.equal(a(x)[-1], b(x)[-1])


def test_block_plugins_on_dyn_resnet_cifar():
    """The multi-scale fusion module as a plugin of an ODConv ResNet's last stage."""
    model = _build(dict(TINY, type='DynResNetCIFAR', dyn_conv=dict(type='ODConv', kernel_num=2),
                        block_plugins=[dict(cfg=dict(type='MultiScaleFeatureFusion',
                                                     fusion='weighted'),
                                            stages=(False, True))]))
    assert model.block_plugin_names == ['layer2.0.residual_plugins.0',
                                        'layer2.1.residual_plugins.0']
    plugin = model.get_submodule(model.block_plugin_names[0])
    assert isinstance(plugin, MultiScaleFeatureFusion) and plugin.fusion == 'weighted'
    model(torch.randn(2, 3, 16, 16))[-1].sum().backward()


@pytest.mark.parametrize('plugins, error, match', [
    (dict(cfg=dict(type='AdaptiveEnhancement')), TypeError, 'list of dict'),
    ([dict(type='AdaptiveEnhancement')], TypeError, 'cfg=dict'),
    ([dict(cfg=dict(type='AdaptiveEnhancement'), stages=(True, ))], ValueError, '2 stages'),
    ([dict(cfg=dict(type='AdaptiveEnhancement'), position='after_conv1')], ValueError,
     'unknown block_plugins keys'),
    ([dict(cfg=dict(type='NoSuchPlugin'))], KeyError, 'NoSuchPlugin'),
])
def test_block_plugins_errors(plugins, error, match):
    with pytest.raises(error, match=match):
        _build(dict(TINY, type='DynResNetCIFAR', block_plugins=plugins))


def test_block_plugins_on_mmdet_resnet():
    """mmdet's blocks (no drop_path) take block_plugins too, before the residual sum."""
    model = _build(dict(type='DynResNet', depth=18, num_stages=2, strides=(1, 2),
                        dilations=(1, 1), out_indices=(0, 1),
                        block_plugins=[dict(cfg=dict(type='AdaptiveEnhancement'))]), 'mmdet')
    assert model.block_plugin_names == [f'layer{s}.{b}.residual_plugins.0'
                                        for s in (1, 2) for b in (0, 1)]
    assert isinstance(model.layer2[0].residual_plugins[0], AdaptiveEnhancement)
    assert model.layer2[0].residual_plugins[0].in_channels == 128
    model.eval()
    block = model.layer1[1]  # stride 1, no downsample
    block.residual_plugins[0] = _Zero()
    x = torch.randn(2, 64, 8, 8)
    assert torch.equal(block(x), torch.relu(x))


def test_fusion_as_mmdet_resnet_plugin():
    """mmdet's own ``plugins`` (Bottleneck, after conv2) builds the mmdyn modules."""
    model = _build(dict(type='DynResNet', depth=50, num_stages=1, strides=(1, ), dilations=(1, ),
                        out_indices=(0, ), dyn_conv=dict(type='DyConv', kernel_num=2),
                        plugins=[dict(cfg=dict(type='MultiScaleFeatureFusion'),
                                      stages=(True, ), position='after_conv2'),
                                 dict(cfg=dict(type='AdaptiveEnhancement'),
                                      stages=(True, ), position='after_conv3')]), 'mmdet')
    block = model.layer1[0]
    kinds = {type(getattr(block, n)) for n in block.after_conv2_plugin_names
             + block.after_conv3_plugin_names}
    assert kinds == {MultiScaleFeatureFusion, AdaptiveEnhancement}
    (out, ) = model(torch.randn(1, 3, 32, 32))
    assert out.shape == (1, 256, 8, 8)


@pytest.mark.parametrize('scope', ['mmpretrain', 'mmdet'])
def test_fusion_neck(scope):
    neck = _build(dict(type='MultiScaleFusionNeck', in_channels=[8, 16], fusion='concat',
                       pool=scope == 'mmpretrain'), scope)
    feats = (torch.randn(2, 8, 8, 8), torch.randn(2, 16, 4, 4))
    outs = neck(feats)
    if scope == 'mmpretrain':
        assert [tuple(o.shape) for o in outs] == [(2, 8), (2, 16)]
        manual = torch.relu(neck.fusions[1](feats[1])).mean((2, 3))
        assert torch.allclose(outs[1], manual, atol=1e-6)
    else:
        assert [tuple(o.shape) for o in outs] == [(2, 8, 8, 8), (2, 16, 4, 4)]
    with pytest.raises(ValueError, match='built for 2 levels'):
        neck(feats[:1])
    with pytest.raises(ValueError, match='2 in_channels but 3 out_channels'):
        _build(dict(type='MultiScaleFusionNeck', in_channels=[8, 16], out_channels=[1, 2, 3]),
               scope)


def test_classifier_with_neck_and_adaptive_loss():
    model = _build(dict(
        type='ImageClassifier',
        backbone=dict(TINY, type='DMCResNetCIFAR', out_indices=(1, )),
        neck=dict(type='MultiScaleFusionNeck', in_channels=16),
        head=dict(type='LinearClsHead', num_classes=3, in_channels=16,
                  loss=dict(type='AdaptiveLoss', class_counts=[5, 10, 40]))))
    from mmpretrain.structures import DataSample
    samples = [DataSample().set_gt_label(i % 3) for i in range(3)]
    losses = model(torch.randn(3, 3, 16, 16), samples, mode='loss')
    assert torch.isfinite(losses['loss'])
    losses['loss'].backward()
