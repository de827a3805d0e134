# CIFAR-100 ResNet-18 (3x3 stem) + KernelWarehouse 1x: the block convs and strided
# downsample convs draw from one warehouse per stage (the official ImageNet placement and
# sharing ('layer', 'conv'); stem and fc static); as many cells as kernel partitions.
# The paper has no CIFAR experiment: the static CIFAR recipe, τ 1 -> 0 over its first
# tenth (10 of 100 epochs).
_base_ = ['../static/resnet18-static_8xb16_cifar100.py',
          '../_base_/schedules/kw_temperature_10e.py']
model = dict(backbone=dict(type='DynResNetCIFAR', dyn_conv=dict(type='KW', cell_num_ratio=1)))
