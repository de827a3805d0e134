# Shared base of configs/cifar100/resnet50-*: CIFAR-100 (data/cifar100, the python
# pickle batches), ResNet-50 for CIFAR (3x3 stem, no max-pool) whose backbone is
# mmdyn's DynResNetCIFAR with A2D2C+ (4 kernels) in every block conv.
# Same recipe as ./cifar100_resnet18.py, of which this is a child: only the depth,
# the head width and the pretrained line differ.
# Recipe (chosen; the paper only says 100 epochs, SGD momentum 0.9, lr x0.1 at
# fixed epochs): SGD momentum 0.9, weight decay 5e-4, lr 0.1 for batch 128
# (8 GPUs x 16), x0.1 at epochs 30/60/90, 100 epochs. See docs/configs.md.
_base_ = './cifar100_resnet18.py'

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
