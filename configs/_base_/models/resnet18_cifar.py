# Shared base of configs/cifar100/resnet18-*: CIFAR-100 (data/cifar100, the python
# pickle batches), ResNet-18 for CIFAR (3x3 stem, no max-pool) whose backbone is
# mmdyn's DynResNetCIFAR with A2D2C+ (4 kernels) in every block conv.
# Recipe (chosen; the paper only says 100 epochs, SGD momentum 0.9, lr x0.1 at
# fixed epochs): SGD momentum 0.9, weight decay 5e-4, lr 0.1 for batch 128
# (8 GPUs x 16), x0.1 at epochs 30/60/90, 100 epochs. See docs/configs.md.
_base_ = 'mmpretrain::resnet/resnet50_8xb16_cifar100.py'

custom_imports = dict(imports=['mmdyn.models'], allow_failed_imports=False)

# Path of a pretrained *static* checkpoint (mmpretrain or torchvision layout) to
# inflate into the dynamic backbone; None = train from scratch (mmpretrain's
# default Kaiming init). Edit this line, or pass `--cfg-options pretrained=PATH`
# to tools/train.py (which re-applies the init below; see docs/configs.md).
pretrained = None

model = dict(
    backbone=dict(
        type='DynResNetCIFAR',
        depth=18,
        num_stages=4,
        out_indices=(3, ),
        style='pytorch',
        dyn_conv=dict(type='A2D2CPlus', kernel_num=4),
        dyn_placement='all_block_convs',
        init_cfg=dict(type='Pretrained', checkpoint=pretrained) if pretrained else [
            dict(type='Kaiming', layer=['Conv2d']),
            dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])]),
    head=dict(num_classes=100, in_channels=512))

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4))
param_scheduler = dict(
    _delete_=True, type='MultiStepLR', by_epoch=True, milestones=[30, 60, 90],
    gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
auto_scale_lr = dict(base_batch_size=128)

# Temperature of A2D2C/A2D2C+/ODConv/DynamicConv: 30 -> 1 over the first 10
# epochs (the paper's and DynamicConv/ODConv's schedule). The CondConv, DCD and
# static variants set custom_hooks = [] (no temperature).
custom_hooks = [
    dict(type='TemperatureAnnealHook', start_temperature=30.0,
         end_temperature=1.0, anneal_epochs=10)
]

# Never download (mmpretrain's CIFAR100 defaults to download=True): a missing
# data/cifar100/cifar-100-python/{train,test,meta} is an error, not a download.
train_dataloader = dict(dataset=dict(data_root='data/cifar100', download=False))
val_dataloader = dict(dataset=dict(data_root='data/cifar100', download=False))
test_dataloader = val_dataloader
