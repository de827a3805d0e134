# CIFAR-100 ResNet-18 with DynamicConv (4 kernels; alias 'DyConv', as mmdet's own
# 'DynamicConv' is Sparse R-CNN's head) in every block conv (stem, downsample, fc
# static).
_base_ = ['../static/resnet18-static_8xb16_cifar100.py',
          '../_base_/schedules/temperature_anneal_10e.py']
model = dict(backbone=dict(type='DynResNetCIFAR', dyn_conv=dict(type='DyConv', kernel_num=4),
                           dyn_placement='all_block_convs'))
