# Shared base of configs/imagenet/resnet18-*: ImageNet-1k (data/imagenet, mmpretrain
# ImageNet layout), ResNet-18 classifier whose backbone is mmdyn's DynResNet with
# A2D2C+ (4 kernels) in every block conv; variants swap model.backbone.dyn_conv.
# Recipe (the paper's / ODConv's ResNet recipe): SGD momentum 0.9, weight decay
# 1e-4, lr 0.1 for batch 256 (8 GPUs x 32), x0.1 at epochs 30/60/90, 100 epochs.
_base_ = 'mmpretrain::resnet/resnet18_8xb32_in1k.py'

custom_imports = dict(imports=['mmdyn.models'], allow_failed_imports=False)

# Path of a pretrained *static* checkpoint (mmpretrain or torchvision layout) to
# inflate into the dynamic backbone; None = train from scratch (mmpretrain's
# default Kaiming init). Edit this line, or pass `--cfg-options pretrained=PATH`
# to tools/train.py (which re-applies the init below; see docs/configs.md).
pretrained = None

model = dict(
    backbone=dict(
        type='DynResNet',
        depth=18,
        num_stages=4,
        out_indices=(3, ),
        style='pytorch',
        dyn_conv=dict(type='A2D2CPlus', kernel_num=4),
        dyn_placement='all_block_convs',
        init_cfg=dict(type='Pretrained', checkpoint=pretrained) if pretrained else [
            dict(type='Kaiming', layer=['Conv2d']),
            dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])]),
    head=dict(num_classes=1000, in_channels=512))

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4))
param_scheduler = dict(
    _delete_=True, type='MultiStepLR', by_epoch=True, milestones=[30, 60, 90],
    gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
auto_scale_lr = dict(base_batch_size=256)

# Temperature of A2D2C/A2D2C+/ODConv/DynamicConv: 30 -> 1 over the first 10
# epochs (the paper's and DynamicConv/ODConv's schedule). The CondConv, DCD and
# static variants set custom_hooks = [] (no temperature).
custom_hooks = [
    dict(type='TemperatureAnnealHook', start_temperature=30.0,
         end_temperature=1.0, anneal_epochs=10)
]
