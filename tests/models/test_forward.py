"""Forward + backward of every dynamic backbone with every mmdyn layer type."""
import pytest
import torch

from _backbone_helpers import (LAYER_NAMES, build_cls, build_det, forward_backward, kernel_of,
                               layer_cfg)
from mmdyn.ops import LAYERS


@pytest.mark.parametrize('layer', LAYER_NAMES)
@pytest.mark.parametrize('depth,channels', [(18, (64, 128, 256, 512)),
                                            (50, (256, 512, 1024, 2048))])
def test_mmdet_resnet(layer, depth, channels):
    model = build_det(depth=depth, out_indices=(0, 1, 2, 3), dyn_conv=layer_cfg(layer))
    assert isinstance(model.layer2[0].conv1, LAYERS[layer])
    assert type(model.conv1) is torch.nn.Conv2d                 # stem static by default
    outs = forward_backward(model, torch.randn(2, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(2, c, 64 // s, 64 // s) for c, s in
                                              zip(channels, (4, 8, 16, 32))]
    kernel = kernel_of(model.layer4[0].conv2)
    assert kernel.grad is not None and kernel.grad.abs().sum() > 0


@pytest.mark.parametrize('layer', LAYER_NAMES)
def test_mmpretrain_resnet18(layer):
    model = build_cls(depth=18, dyn_conv=layer_cfg(layer))
    outs = forward_backward(model, torch.randn(1, 3, 64, 64))
    assert len(outs) == 1 and outs[0].shape == (1, 512, 2, 2)
    assert isinstance(model.layer1[1].conv2, LAYERS[layer])


@pytest.mark.parametrize('layer', LAYER_NAMES)
def test_mmpretrain_resnet_cifar(layer):
    model = build_cls('DynResNetCIFAR', depth=18, dyn_conv=layer_cfg(layer),
                      dyn_placement='initial')
    assert isinstance(model.conv1, LAYERS[layer]) and model.conv1.kernel_size == (3, 3)
    assert model.dyn_conv_names == ['conv1']
    outs = forward_backward(model, torch.randn(2, 3, 32, 32))
    assert outs[0].shape == (2, 512, 4, 4)


@pytest.mark.parametrize('layer', LAYER_NAMES)
def test_mmpretrain_mobilenet_v2(layer):
    model = build_cls('DynMobileNetV2', widen_factor=0.5, dyn_conv=layer_cfg(layer, 2))
    stem = LAYERS[layer] if layer == 'KW' else torch.nn.Conv2d  # KW's official placement
    assert type(model.conv1.conv) is stem                        # has the stem; others: static
    assert isinstance(model.conv2.conv, LAYERS[layer])            # last 1x1 dynamic
    dw = model.layer2[0].conv[1].conv
    assert isinstance(dw, LAYERS[layer]) and dw.groups == dw.in_channels   # depthwise
    outs = forward_backward(model, torch.randn(2, 3, 32, 32))
    assert outs[0].shape == (2, 1280, 1, 1)


def test_mmdet_mobilenet_v2():
    from mmdet.registry import MODELS
    model = MODELS.build(dict(type='DynMobileNetV2', widen_factor=0.5,
                              dyn_conv=dict(type='A2D2CPlus', kernel_num=2)))
    outs = forward_backward(model, torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [16, 16, 48, 1280]
    assert all(isinstance(model.get_submodule(n), LAYERS['A2D2CPlus'])
               for n in model.dyn_conv_names)


def test_scoped_names_resolve_to_each_framework():
    from mmengine.registry import MODELS, DefaultScope

    from mmdyn.models.backbones import DynResNetCls, DynResNetDet
    with DefaultScope.overwrite_default_scope('mmdet'):
        det = MODELS.build(dict(type='mmdet.DynResNet', depth=18))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        cls = MODELS.build(dict(type='mmpretrain.DynResNet', depth=18))
    assert type(det) is DynResNetDet and type(cls) is DynResNetCls
    assert det.out_indices == (0, 1, 2, 3) and cls.out_indices == (3, )
