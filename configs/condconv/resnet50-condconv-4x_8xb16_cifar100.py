# CIFAR-100 ResNet-50 with CondConv (4 experts; no temperature, no anneal hook) in every
# block conv (stem, downsample, fc static).
_base_ = '../static/resnet50-static_8xb16_cifar100.py'
model = dict(backbone=dict(type='DynResNetCIFAR', dyn_conv=dict(type='CondConv', kernel_num=4),
                           dyn_placement='all_block_convs'))
