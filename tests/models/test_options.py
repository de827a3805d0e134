"""Placement options, presets, errors, frozen_stages, norm_eval and init."""
import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from _backbone_helpers import build_cls, build_det
from mmdyn.ops import LAYERS

BLOCKS18 = [f'layer{s}.{b}.conv{c}' for s in range(1, 5) for b in range(2) for c in (1, 2)]


def test_presets_resnet18():
    m = build_cls(depth=18, dyn_placement='all_block_convs')
    assert m.dyn_conv_names == BLOCKS18
    assert type(m.conv1) is torch.nn.Conv2d
    assert type(m.layer2[0].downsample[0]) is torch.nn.Conv2d
    assert build_cls(depth=18, dyn_placement='initial').dyn_conv_names == ['conv1']
    assert build_cls(depth=18, dyn_placement='median').dyn_conv_names == [
        n for n in BLOCKS18 if n.startswith(('layer2', 'layer3'))]
    assert build_cls(depth=18, dyn_placement='terminal').dyn_conv_names == [
        n for n in BLOCKS18 if n.startswith('layer4')]


def test_explicit_options_resnet50():
    m = build_det(depth=50, stage_with_dyn=(False, False, True, False),
                  dyn_convs=('conv2', 'downsample', 'stem'))
    assert m.dyn_conv_names == ['conv1', 'layer3.0.conv2', 'layer3.0.downsample.0'] + [
        f'layer3.{b}.conv2' for b in range(1, 6)]
    assert isinstance(m.layer3[0].downsample[0], LAYERS['A2D2CPlus'])
    assert m.layer3[0].downsample[0].stride == (2, 2)
    default = build_det(depth=50)
    assert len(default.dyn_conv_names) == 16 * 3 and 'conv1' not in default.dyn_conv_names
    # a preset together with the same explicit values is accepted
    build_det(depth=18, dyn_placement='terminal', stage_with_dyn=(0, 0, 0, 1))


def test_errors():
    with pytest.raises(KeyError, match='mmdyn layers are A2D2C.*DCD'):
        build_det(depth=18, dyn_conv=dict(type='NoSuchConv'))
    with pytest.raises(ValueError, match='stage_with_dyn has 3 entries.*num_stages=4'):
        build_det(depth=18, stage_with_dyn=(True, True, True))
    with pytest.raises(ValueError, match="unknown dyn_convs name.*'conv4'.*stem, conv1, conv2, "
                                         'conv3, downsample'):
        build_cls(depth=18, dyn_convs=('conv4', ))
    with pytest.raises(ValueError, match='unknown dyn_placement.*all_block_convs, initial, '
                                         'median, terminal'):
        build_cls(depth=18, dyn_placement='middle')
    with pytest.raises(ValueError, match='conflicts with the explicit stage_with_dyn'):
        build_det(depth=18, dyn_placement='initial', stage_with_dyn=(True, ) * 4)
    with pytest.raises(ValueError, match='conflicts with the explicit dyn_convs'):
        build_det(depth=18, dyn_placement='terminal', dyn_convs=('conv1', ))


@pytest.mark.parametrize('builder', [build_det, build_cls])
def test_frozen_stages(builder):
    m = builder(depth=18, frozen_stages=2, dyn_conv=dict(type='ODConv', kernel_num=2),
                dyn_convs=('stem', 'conv1', 'conv2'))
    m.train()
    for name, p in m.named_parameters():
        frozen = name.startswith(('conv1.', 'norm1', 'bn1', 'layer1.', 'layer2.'))
        assert p.requires_grad is not frozen, name
    assert not m.conv1.weight.requires_grad and not m.layer2[0].conv1.bn.weight.requires_grad
    assert not m.layer1.training and m.layer3.training


@pytest.mark.parametrize('layer', ['ODConv', 'DCD'])
def test_norm_eval_covers_attention_bn(layer):
    cfg = dict(type=layer) if layer == 'DCD' else dict(type=layer, kernel_num=2)
    m = build_cls(depth=18, norm_eval=True, dyn_conv=cfg)
    m.train()
    attn_bns = [n for n, mod in m.named_modules() if isinstance(mod, _BatchNorm)
                and any(n.startswith(d + '.') for d in m.dyn_conv_names)]
    assert len(attn_bns) >= 16
    assert all(not mod.training for mod in m.modules() if isinstance(mod, _BatchNorm))
    m2 = build_cls(depth=18, norm_eval=False, dyn_conv=cfg)
    m2.train()
    assert m2.get_submodule(attn_bns[0]).training


@pytest.mark.parametrize('layer', ['A2D2CPlus', 'ODConv'])
def test_default_kaiming_init_skips_kernel_banks(layer):
    """mmdet's Kaiming(layer='Conv2d') must not treat a bank as one 5-D conv."""
    m = build_det(depth=18, dyn_conv=dict(type=layer, kernel_num=4))
    assert m.init_cfg[0]['type'] == 'Kaiming'
    m.init_weights()
    w = m.layer3[1].conv2.weight                      # (4, 256, 256, 3, 3)
    ref = LAYERS[layer](256, 256, 3, padding=1, kernel_num=4).weight
    assert w.shape == ref.shape
    assert abs(w[0].std() / ref[0].std() - 1) < 0.02
    wrong = torch.empty_like(w)
    torch.nn.init.kaiming_normal_(wrong, mode='fan_out', nonlinearity='relu')
    assert abs(w[0].std() / wrong[0].std() - 1) > 0.1


def _upstream_and_ours():
    """(upstream class, our class) of every dynamic ResNet/MobileNetV2 that subclasses one."""
    from mmdet.models.backbones import MobileNetV2 as DetMobileNetV2
    from mmdet.models.backbones import ResNet as DetResNet
    from mmpretrain.models.backbones import MobileNetV2 as ClsMobileNetV2
    from mmpretrain.models.backbones import ResNet as ClsResNet
    from mmpretrain.models.backbones import ResNet_CIFAR

    from mmdyn.models.backbones.dyn_mobilenet_v2 import DynMobileNetV2Cls, DynMobileNetV2Det
    from mmdyn.models.backbones.dyn_resnet import DynResNetCIFAR, DynResNetCls, DynResNetDet
    return [(DetResNet, DynResNetDet, (18, )), (ClsResNet, DynResNetCls, (18, )),
            (ResNet_CIFAR, DynResNetCIFAR, (18, )), (DetMobileNetV2, DynMobileNetV2Det, (0.5, )),
            (ClsMobileNetV2, DynMobileNetV2Cls, (0.5, ))]


@pytest.mark.parametrize('index', range(5), ids=['mmdet-ResNet', 'mmpretrain-ResNet',
                                                 'ResNet_CIFAR', 'mmdet-MobileNetV2',
                                                 'mmpretrain-MobileNetV2'])
def test_positional_arguments_and_static_network_as_upstream(index):
    """Drop-in (issue 18): the parent's positional arguments work (``DynResNet(18)``),
    and ``dyn_conv=None`` is the parent's own static network, parameter for parameter."""
    upstream, ours, args = _upstream_and_ours()[index]
    dynamic = ours(*args)
    assert len(dynamic.dyn_conv_names) > 0
    torch.manual_seed(0)
    static = ours(*args, dyn_conv=None)
    torch.manual_seed(0)
    reference = upstream(*args)
    assert static.dyn_conv_names == [] and static.dyn_conv_cfg is None
    assert [(k, v.shape) for k, v in static.state_dict().items()] == \
        [(k, v.shape) for k, v in reference.state_dict().items()]
    assert not any(type(m).__module__.startswith('mmdyn.ops') for m in static.modules())
    static.load_state_dict(reference.state_dict())
    static.eval()
    reference.eval()  # the frameworks' train() returns None: no chaining
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        for a, b in zip(static(x), reference(x)):
            assert torch.equal(a, b)


def test_dyn_conv_that_is_not_a_layer_config():
    with pytest.raises(TypeError, match='dyn_conv must be None .the static network. or a '
                                        'layer config dict'):
        build_cls(depth=18, dyn_conv='A2D2CPlus')
