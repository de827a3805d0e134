# The system of seeds/000 (a blog reproducing "image classification based on
# multi-scale dynamic convolution"): ODConv (4 kernels) in every block conv of a
# ResNet-18 for 32x32 inputs, the multi-scale feature fusion (parallel 1/3/5/7
# convs summed) as the neck, and the adaptive loss (class-balanced focal loss,
# alpha 0.25, gamma 2, beta 0.999, class counts from the training set) on GTSRB
# (43 classes; blog: 94.4% validation accuracy).
# Data: data/gtsrb/Training/000NN/GT-000NN.csv + .ppm (official layout); the
# validation split holds out 10% of the *tracks* of each class (seed 0); test =
# the official Final_Test with GT-final_test.csv. Images resized to 32x32, no
# flip (signs are not mirror-symmetric), ROI crop off (set roi_crop=True).
# Recipe (chosen; the blog gives none): SGD momentum 0.9, weight decay 5e-4,
# lr 0.1 for batch 128 (8 GPUs x 16), cosine over 50 epochs; ODConv temperature
# 30 -> 1 over the first 10 epochs. See docs/configs.md.
_base_ = 'mmpretrain::resnet/resnet18_8xb16_cifar10.py'

custom_imports = dict(imports=['mmdyn.models'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='DynResNetCIFAR',
        depth=18,
        dyn_conv=dict(type='ODConv', kernel_num=4, reduction=0.0625),
        dyn_placement='all_block_convs'),
    neck=dict(_delete_=True, type='MultiScaleFusionNeck', in_channels=512,
              kernel_sizes=(1, 3, 5, 7), fusion='sum', pool=True),
    head=dict(num_classes=43, in_channels=512,
              loss=dict(_delete_=True, type='AdaptiveLoss', alpha=0.25, gamma=2.0,
                        balance_factor=0.999)))

data_preprocessor = dict(num_classes=43, mean=[86.8, 79.6, 82.0], std=[69.5, 66.5, 68.1],
                         to_rgb=True)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(32, 32), keep_ratio=False),
    dict(type='PackInputs'),
]
test_pipeline = train_pipeline
dataset = dict(type='GTSRB', data_root='data/gtsrb', val_ratio=0.1, split_seed=0,
               roi_crop=False)
train_dataloader = dict(dataset=dict(_delete_=True, split='train', pipeline=train_pipeline,
                                     **dataset))
val_dataloader = dict(dataset=dict(_delete_=True, split='val', pipeline=test_pipeline,
                                   **dataset))
test_dataloader = dict(
    batch_size=16, num_workers=2, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(_delete_=True, split='test', pipeline=test_pipeline, **dataset))
test_evaluator = dict(type='Accuracy', topk=(1, ))

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4))
param_scheduler = dict(
    _delete_=True, type='CosineAnnealingLR', by_epoch=True, T_max=50, begin=0, end=50)
train_cfg = dict(by_epoch=True, max_epochs=50, val_interval=1)
auto_scale_lr = dict(base_batch_size=128)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3,
                                     save_best='auto'))

custom_hooks = [
    dict(type='TemperatureAnnealHook', start_temperature=30.0, end_temperature=1.0,
         anneal_epochs=10),
    dict(type='ClassCountsHook'),
]
