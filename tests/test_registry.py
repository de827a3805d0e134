"""Registration of the mmdyn layers in MMEngine's root MODELS registry."""
import pytest
import torch
from mmcv.cnn import ConvModule, build_conv_layer
from mmengine.registry import MODELS, DefaultScope

import mmdyn.models  # noqa: F401  (registers)
from mmdyn.models import LAYER_NAMES, build_dyn_conv_layer
from mmdyn.ops import LAYERS

SCOPES = ['mmdet', 'mmpretrain']
NAMES = [(alias, cls) for alias, cls in LAYERS.items()] + [
    (cls.__name__, cls) for cls in LAYERS.values()]


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
        with pytest.raises(KeyError, match='unknown conv layer type .*A2D2CPlus.*DyConv'):
            build_dyn_conv_layer(dict(type='A2D2CPlsu'), 8, 8, 3)


def test_build_dyn_conv_layer_builds_known_and_static():
    assert type(build_dyn_conv_layer(dict(type='ODConv'), 8, 8, 3)) is LAYERS['ODConv']
    assert isinstance(build_dyn_conv_layer(None, 8, 8, 3), torch.nn.Conv2d)
    with pytest.raises(TypeError, match='"type" key'):
        build_dyn_conv_layer(dict(kernel_num=4), 8, 8, 3)


def test_layer_names_cover_aliases_and_classes():
    assert set(LAYER_NAMES) == {n for n, _ in NAMES}


@pytest.mark.parametrize('alias', list(LAYERS))
def test_conv_module_uses_layer_init(alias):
    """ConvModule must call the layer's own per-kernel init, not kaiming on 5-D."""
    torch.manual_seed(0)
    module = ConvModule(16, 16, 3, padding=1, conv_cfg=dict(type=alias),
                        norm_cfg=dict(type='BN'))
    assert type(module.conv) is LAYERS[alias]
    assert module.with_bias is False  # bias='auto' with a norm -> no bias
    module.init_weights()  # must not re-initialise the 5-D bank as one tensor
    w = module.conv.weight
    kernel = w[0] if w.dim() == 5 else w
    # fan of one 16x16x3x3 kernel: kaiming-uniform(a=sqrt 5) std = 1/sqrt(3*fan_in)
    # ODConv: kaiming-normal fan_out std = sqrt(2/fan_out); fan_in == fan_out here.
    fan = 16 * 3 * 3
    expected = (2 / fan) ** 0.5 if alias == 'ODConv' else (1 / (3 * fan)) ** 0.5
    assert kernel.std().item() == pytest.approx(expected, rel=0.15)
    out = module(torch.randn(2, 16, 8, 8))
    assert out.shape == (2, 16, 8, 8)
