# Shared base of configs/cifar100/mobilenet-v2-*: CIFAR-100 (data/cifar100),
# MobileNetV2 (DynMobileNetV2, A2D2C+ 4 kernels in every pw/dw conv and the last
# 1x1). mmpretrain's MobileNetV2 has no stride option, so the ImageNet strides
# (total 32) are kept: a 32x32 image ends as a 1x1 map (documented limitation).
# Recipe as configs/_base_/cifar100_resnet18.py (100 epochs, SGD 0.1 / batch 128,
# wd 5e-4, x0.1 at 30/60/90).
_base_ = './cifar100_resnet18.py'

# Pretrained static MobileNetV2 checkpoint to inflate; None = from scratch.
# Edit this line, or pass `--cfg-options pretrained=PATH` to tools/train.py.
pretrained = None

model = dict(
    backbone=dict(
        _delete_=True,
        type='DynMobileNetV2',
        widen_factor=1.0,
        dyn_conv=dict(type='A2D2CPlus', kernel_num=4),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained) if pretrained else [
            dict(type='Kaiming', layer=['Conv2d']),
            dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])]),
    head=dict(num_classes=100, in_channels=1280))
