# Shared base of configs/imagenet/resnet50-*: ImageNet-1k (data/imagenet, mmpretrain
# ImageNet layout), ResNet-50 classifier whose backbone is mmdyn's DynResNet with
# A2D2C+ (4 kernels) in every block conv; variants swap model.backbone.dyn_conv.
# Same recipe as ./imagenet_resnet18.py, of which this is a child: only the depth,
# the head width and the pretrained line differ.
# Recipe (the paper's / ODConv's ResNet recipe): SGD momentum 0.9, weight decay
# 1e-4, lr 0.1 for batch 256 (8 GPUs x 32), x0.1 at epochs 30/60/90, 100 epochs.
_base_ = './imagenet_resnet18.py'

# Path of a pretrained *static* checkpoint (mmpretrain or torchvision layout) to
# inflate into the dynamic backbone; None = train from scratch (mmpretrain's
# default Kaiming init). Edit this line, or pass `--cfg-options pretrained=PATH`
# to tools/train.py (which re-applies the init below; see docs/configs.md).
pretrained = None

model = dict(
    backbone=dict(
        depth=50,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained) if pretrained else [
            dict(type='Kaiming', layer=['Conv2d']),
            dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])]),
    head=dict(in_channels=2048))
