# Shared base of configs/dmc/*imagenette* / *imagewoof*: the seeds/001 dynamic mask
# convolution ResNet-18 with the ImageNet stem (7x7/2 + max-pool; DMCResNet) on
# Imagenette (data/imagenette2: train/ and val/ with 10 WordNet-id folders).
# Recipe (chosen): mmpretrain's ImageNet pipeline at 224 (RandomResizedCrop +
# flip; test: resize short edge 256 + center crop 224), SGD momentum 0.9, weight
# decay 5e-4, lr 0.1 for batch 256 (8 GPUs x 32), 5 warm-up epochs then cosine,
# 100 epochs. See docs/configs.md.
_base_ = 'mmpretrain::resnet/resnet18_8xb32_in1k.py'

custom_imports = dict(imports=['mmdyn.models'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='DMCResNet',
        depth=18,
        dyn_conv=dict(type='DMC', branch_dilations=(1, 2, 3), mask='spatial',
                      fusion='conv1x1'),
        dyn_convs=('conv2', ),
        enhance=dict(type='AdaptiveEnhancement', reduction=16, pixel_reduction=8,
                     mode='sequential')),
    head=dict(num_classes=10, in_channels=512))
data_preprocessor = dict(num_classes=10)

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, T_max=95, begin=5, end=100),
]
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
auto_scale_lr = dict(base_batch_size=256)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3,
                                     save_best='auto'))

train_dataloader = dict(
    dataset=dict(_delete_=True, type='Imagenette', data_root='data/imagenette2',
                 split='train', pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(
    dataset=dict(_delete_=True, type='Imagenette', data_root='data/imagenette2',
                 split='val', pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader
