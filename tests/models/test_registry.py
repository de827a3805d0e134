"""Registration of the mmdyn layers in MMEngine's root MODELS registry."""
import pytest
import torch
from mmcv.cnn import ConvModule, build_conv_layer, build_plugin_layer
from mmengine.registry import MODELS, DefaultScope

import mmdyn.models  # noqa: F401  (registers)
from mmdyn.models import LAYER_NAMES, build_dyn_conv_layer
from mmdyn.models.layers import CONV_MODULE_NAMES, MODULE_NAMES
from mmdyn.ops import (LAYERS, MODULES, AdaptiveEnhancement, DynamicMaskConv2d,
                       MultiScaleFeatureFusion)

SCOPES = ['mmdet', 'mmpretrain']
NAMES = [(alias, cls) for alias, cls in LAYERS.items()] + [
    (cls.__name__, cls) for cls in LAYERS.values()]
DMC_NAMES = [('DMC', DynamicMaskConv2d), ('DynamicMaskConv2d', DynamicMaskConv2d)]
PLUGIN_NAMES = [('MSFF', MultiScaleFeatureFusion),
                ('MultiScaleFeatureFusion', MultiScaleFeatureFusion),
                ('AdaptiveEnhancement', AdaptiveEnhancement)]


@pytest.mark.parametrize('scope', SCOPES)
@pytest.mark.parametrize('name,cls', NAMES, ids=[n for n, _ in NAMES])
def test_every_name_resolves_to_mmdyn_class(scope, name, cls):
    with DefaultScope.overwrite_default_scope(scope):
        layer = build_conv_layer(dict(type=name), 8, 16, 3, padding=1)
    assert type(layer) is cls
    assert layer(torch.randn(2, 8, 6, 6)).shape == (2, 16, 6, 6)


@pytest.mark.parametrize('scope', SCOPES)
def test_issue_example_a2d2cplus(scope):
    with DefaultScope.overwrite_default_scope(scope):
        layer = build_conv_layer(dict(type='A2D2CPlus', kernel_num=4), 64, 64, 3, padding=1)
    assert type(layer) is LAYERS['A2D2CPlus']
    assert layer.kernel_num == 4 and layer.padding == (1, 1)


def test_mmdet_dynamicconv_clash_is_why_alias_is_dyconv():
    """Under the mmdet scope, 'DynamicConv' is Sparse R-CNN's head, not ours."""
    import mmdet.models  # noqa: F401
    with DefaultScope.overwrite_default_scope('mmdet'):
        with MODELS.switch_scope_and_registry(None) as registry:
            other = registry.get('DynamicConv')
            ours = registry.get('DyConv')
    assert other is not None and other is not LAYERS['DyConv']
    assert ours is LAYERS['DyConv']


@pytest.mark.parametrize('scope', SCOPES)
def test_unknown_type_lists_mmdyn_layers(scope):
    with DefaultScope.overwrite_default_scope(scope):
        with pytest.raises(KeyError, match='unknown conv layer type .*A2D2CPlus.*DyConv.*'
                                           'KW, KWConv2d.*DMC, DynamicMaskConv2d'):
            build_dyn_conv_layer(dict(type='A2D2CPlsu'), 8, 8, 3)


def test_build_dyn_conv_layer_builds_known_and_static():
    assert type(build_dyn_conv_layer(dict(type='ODConv'), 8, 8, 3)) is LAYERS['ODConv']
    assert isinstance(build_dyn_conv_layer(None, 8, 8, 3), torch.nn.Conv2d)
    with pytest.raises(TypeError, match='"type" key'):
        build_dyn_conv_layer(dict(kernel_num=4), 8, 8, 3)


def test_layer_names_cover_aliases_and_classes():
    assert set(LAYER_NAMES) == {n for n, _ in NAMES}
    assert set(LAYERS) == {'A2D2C', 'A2D2CPlus', 'ODConv', 'DyConv', 'CondConv', 'DCD', 'KW'}


@pytest.mark.parametrize('alias', list(LAYERS))
def test_conv_module_uses_layer_init(alias):
    """ConvModule must call the layer's own per-kernel init, not kaiming on 5-D."""
    torch.manual_seed(0)
    module = ConvModule(16, 16, 3, padding=1, conv_cfg=dict(type=alias),
                        norm_cfg=dict(type='BN'))
    assert type(module.conv) is LAYERS[alias]
    assert module.with_bias is False  # bias='auto' with a norm -> no bias
    module.init_weights()  # must not re-initialise the 5-D bank as one tensor
    # the kernel bank, the kernel, or (KernelWarehouse) the cells of the layer's kernel
    w = getattr(module.conv, 'weight', None)
    kernel = module.conv.cells if w is None else w[0] if w.dim() == 5 else w
    # fan of one 16x16x3x3 kernel: kaiming-uniform(a=sqrt 5) std = 1/sqrt(3*fan_in)
    # kernel_init 'kaiming_fan_out' (ODConv, KW): kaiming-normal std = sqrt(2/fan_out);
    # fan_in == fan_out here (KW: the 9 cells 16x16x1x1 of one kernel, fan_out 9*16).
    fan = 16 * 3 * 3
    expected = ((2 / fan) ** 0.5 if LAYERS[alias].kernel_init == 'kaiming_fan_out'
                else (1 / (3 * fan)) ** 0.5)
    assert kernel.std().item() == pytest.approx(expected, rel=0.15)
    out = module(torch.randn(2, 16, 8, 8))
    assert out.shape == (2, 16, 8, 8)


# ---------------------------------------------------------------- mmdyn.ops.MODULES
def test_module_names():
    # (the order is the import order of the layer files; the names are what count)
    assert sorted(MODULE_NAMES) == sorted(('DMC', 'DynamicMaskConv2d', 'AdaptiveEnhancement',
                                           'MSFF', 'MultiScaleFeatureFusion'))
    assert set(CONV_MODULE_NAMES) == {n for n, _ in DMC_NAMES}
    assert {n for n, _ in DMC_NAMES + PLUGIN_NAMES} == set(MODULE_NAMES)
    assert not set(MODULE_NAMES) & set(LAYER_NAMES)  # LAYERS is left unchanged
    for name in MODULE_NAMES:
        assert MODELS.get(name) in MODULES.values()


@pytest.mark.parametrize('scope', SCOPES)
@pytest.mark.parametrize('name,cls', DMC_NAMES, ids=[n for n, _ in DMC_NAMES])
def test_dmc_builds_as_conv_layer(scope, name, cls):
    with DefaultScope.overwrite_default_scope(scope):
        layer = build_conv_layer(dict(type=name), 16, 32, 3, padding=1)
        strided = build_dyn_conv_layer(dict(type=name, mask='channel'), 16, 32, 3, stride=2,
                                       padding=1)
    assert type(layer) is cls and type(strided) is cls and strided.mask == 'channel'
    assert layer(torch.randn(2, 16, 6, 7)).shape == (2, 32, 6, 7)
    assert strided(torch.randn(2, 16, 6, 7)).shape == (2, 32, 3, 4)


@pytest.mark.parametrize('scope', SCOPES)
@pytest.mark.parametrize('name,cls', PLUGIN_NAMES, ids=[n for n, _ in PLUGIN_NAMES])
def test_plugin_layer_builds(scope, name, cls):
    with DefaultScope.overwrite_default_scope(scope):
        abbr, layer = build_plugin_layer(dict(type=name), '_1', in_channels=64)
    assert type(layer) is cls and layer.in_channels == 64
    # mmcv names a plugin by the snake case of its class name plus the postfix
    expected = {'MultiScaleFeatureFusion': 'multi_scale_feature_fusion',
                'AdaptiveEnhancement': 'adaptive_enhancement'}[cls.__name__]
    assert abbr == expected + '_1'
    x = torch.randn(2, 64, 5, 4)
    assert layer(x).shape == x.shape


def test_conv_module_uses_dmc_init():
    torch.manual_seed(0)
    module = ConvModule(16, 16, 3, padding=1, conv_cfg=dict(type='DMC'),
                        norm_cfg=dict(type='BN'))
    assert type(module.conv) is DynamicMaskConv2d and module.with_bias is False
    module.init_weights()  # must call the layer's init, not kaiming on the 5-D bank
    expected = (1 / (3 * 16 * 9)) ** 0.5  # nn.Conv2d default for one branch kernel
    for i in range(3):
        assert module.conv.weight[i].std().item() == pytest.approx(expected, rel=0.15)
    assert module(torch.randn(2, 16, 8, 8)).shape == (2, 16, 8, 8)


def test_mmdet_resnet_with_dmc_convs_and_plugins():
    """mmdet ResNet: conv_cfg=DMC replaces every conv (stem 7x7/s2, 1x1 with stride,
    3x3); MSFF after conv2 gets in_channels=planes, AdaptiveEnhancement after conv3
    gets planes * 4."""
    from mmdet.models.backbones import ResNet
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = ResNet(
            depth=50, num_stages=1, strides=(1, ), dilations=(1, ), out_indices=(0, ),
            conv_cfg=dict(type='DMC', branch_dilations=(1, 2)),
            plugins=[dict(cfg=dict(type='MultiScaleFeatureFusion', fusion='weighted'),
                          stages=(True, ), position='after_conv2'),
                     dict(cfg=dict(type='AdaptiveEnhancement'), stages=(True, ),
                          position='after_conv3')])
    model.init_weights()
    block = model.layer1[0]
    assert type(model.conv1) is DynamicMaskConv2d and model.conv1.padding == (3, 3)
    assert type(block.conv2) is DynamicMaskConv2d
    assert type(block.downsample[0]) is DynamicMaskConv2d
    msff = getattr(block, block.after_conv2_plugin_names[0])
    ae = getattr(block, block.after_conv3_plugin_names[0])
    assert type(msff) is MultiScaleFeatureFusion and msff.in_channels == 64
    assert type(ae) is AdaptiveEnhancement and ae.in_channels == 256
    model.train()
    (out, ) = model(torch.randn(1, 3, 32, 32))
    assert out.shape == (1, 256, 8, 8) and torch.isfinite(out).all()
    out.mean().backward()
    assert msff.logits.grad is not None and ae.pixel_conv2.weight.grad is not None


def test_mmpretrain_resnet_with_dmc_convs():
    from mmpretrain.models.backbones import ResNet
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = ResNet(depth=18, num_stages=1, strides=(1, ), dilations=(1, ),
                       out_indices=(0, ), conv_cfg=dict(type='DMC', fusion='sum'))
    model.init_weights()
    assert type(model.layer1[0].conv1) is DynamicMaskConv2d
    (out, ) = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 64, 8, 8) and torch.isfinite(out).all()
