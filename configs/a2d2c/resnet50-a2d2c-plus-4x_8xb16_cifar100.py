# CIFAR-100 ResNet-50 with A2D2C+ (4 kernels) in every block conv (stem, downsample, fc
# static).
_base_ = ['../static/resnet50-static_8xb16_cifar100.py',
          '../_base_/schedules/temperature_anneal_10e.py']
model = dict(backbone=dict(type='DynResNetCIFAR', dyn_conv=dict(type='A2D2CPlus', kernel_num=4),
                           dyn_placement='all_block_convs'))
