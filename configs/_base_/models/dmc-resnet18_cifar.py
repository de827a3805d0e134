# Shared base of configs/dmc/*: the dynamic mask convolution ResNet of seeds/001
# (Jiang, You, Zhang, CAAI Trans. Intell. Syst. 2026; abstract only, design in
# docs/dmc_design.md) on CIFAR-10 (data/cifar10, the python pickle batches).
# Backbone: mmpretrain ResNet_CIFAR-18 (3x3 stem, no max-pool) whose second 3x3
# conv of every BasicBlock is a DynamicMaskConv2d (branches with dilations
# 1/2/3, a sigmoid spatial mask per branch, 1x1 fusion) and whose residual
# branches end in an AdaptiveEnhancement (channel + pixel attention) before the
# residual sum.
# Recipe (chosen; the abstract gives none): SGD momentum 0.9, weight decay 5e-4,
# lr 0.1 for batch 128 (8 GPUs x 16), cosine to 0 over 200 epochs, random crop
# 32 (padding 4) + horizontal flip. See docs/configs.md.
_base_ = 'mmpretrain::resnet/resnet18_8xb16_cifar10.py'

custom_imports = dict(imports=['mmdyn.models'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='DMCResNetCIFAR',
        depth=18,
        dyn_conv=dict(type='DMC', branch_dilations=(1, 2, 3), mask='spatial',
                      fusion='conv1x1'),
        dyn_convs=('conv2', ),
        enhance=dict(type='AdaptiveEnhancement', reduction=16, pixel_reduction=8,
                     mode='sequential')),
    head=dict(num_classes=10, in_channels=512))

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4))
param_scheduler = dict(
    _delete_=True, type='CosineAnnealingLR', by_epoch=True, T_max=200, begin=0,
    end=200)
train_cfg = dict(by_epoch=True, max_epochs=200, val_interval=1)
auto_scale_lr = dict(base_batch_size=128)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3,
                                     save_best='auto'))

# Never download (mmpretrain's CIFAR datasets default to download=True).
train_dataloader = dict(dataset=dict(data_root='data/cifar10', download=False))
val_dataloader = dict(dataset=dict(data_root='data/cifar10', download=False))
test_dataloader = val_dataloader
