# The GTSRB system of a blog post reproducing "image classification based on
# multi-scale dynamic convolution" (Srlua; docs/references.md, MSFF): ODConv (4 kernels,
# r = 1/16) in every block conv of a ResNet-18 for 32x32 inputs, the multi-scale feature
# fusion (parallel 1/3/5/7 convs summed) as the neck, and the adaptive loss
# (class-balanced focal loss, alpha 0.25, gamma 2, beta 0.999, class counts from the
# training set) on GTSRB (43 classes; blog: 94.4% validation accuracy). Data:
# ../_base_/datasets/gtsrb_bs16.py. Recipe (chosen; the blog gives none): SGD momentum
# 0.9, weight decay 5e-4, lr 0.1 for batch 128 (8 GPUs x 16), cosine over 50 epochs;
# ODConv temperature 30 -> 1 over the first 10 epochs. See docs/configs.md.
_base_ = ['mmpretrain::_base_/models/resnet18_cifar.py', '../_base_/datasets/gtsrb_bs16.py',
          '../_base_/schedules/cifar_bs128_coslr_200e.py',
          '../_base_/default_runtime_save_best.py']
custom_imports = dict(imports=['mmdyn.models'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='DynResNetCIFAR',
        dyn_conv=dict(type='ODConv', kernel_num=4, reduction=0.0625),
        dyn_placement='all_block_convs'),
    neck=dict(_delete_=True, type='MultiScaleFusionNeck', in_channels=512,
              kernel_sizes=(1, 3, 5, 7), fusion='sum', pool=True),
    head=dict(num_classes=43,
              loss=dict(_delete_=True, type='AdaptiveLoss', alpha=0.25, gamma=2.0,
                        balance_factor=0.999)))

param_scheduler = dict(T_max=50, end=50)
train_cfg = dict(max_epochs=50)
custom_hooks = [
    dict(type='TemperatureAnnealHook', start_temperature=30.0, end_temperature=1.0,
         anneal_epochs=10),
    dict(type='ClassCountsHook'),
]
