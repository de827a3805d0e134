"""Helpers of the backbone tests (imported by the test files)."""
from torch.nn.modules.batchnorm import _BatchNorm

import mmdyn.models  # noqa: F401  (registers the backbones)
from mmdyn.ops import LAYERS


def layer_cfg(name: str, kernel_num: int = 4) -> dict:
    """Config of an mmdyn layer; the layers without a kernel bank (DCD, KW)
    have no kernel_num."""
    bank = LAYERS[name].has_kernel_bank
    return dict(type=name, kernel_num=kernel_num) if bank else dict(type=name)


def kernel_of(layer):
    """The trained kernel parameter of an mmdyn layer: its kernel (bank), or
    for KernelWarehouse the cells of the warehouse it draws from."""
    return layer.cells if isinstance(layer, LAYERS['KW']) else layer.weight


LAYER_NAMES = list(LAYERS)


def build_det(**cfg):
    from mmdet.registry import MODELS
    return MODELS.build(dict(type='DynResNet', **cfg))


def build_cls(type_='DynResNet', **cfg):
    from mmpretrain.registry import MODELS
    return MODELS.build(dict(type=type_, **cfg))


def forward_backward(model, x):
    model.train()
    outs = model(x)
    sum(o.float().pow(2).mean() for o in outs).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads[:3])
    return outs


def randomised_static_resnet(depth=50, **kwargs):
    """mmpretrain static ResNet, eval mode, with random BN statistics so that
    no residual branch is zero (zero_init_residual would hide errors)."""
    from mmpretrain.registry import MODELS
    model = MODELS.build(dict(type='ResNet', depth=depth, **kwargs))
    model.init_weights()
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    model.eval()            # the frameworks' train() returns None: do not chain
    return model
