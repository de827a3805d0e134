# CIFAR-100 ResNet-18, CondConv (4 experts; no temperature, no anneal hook) in every block conv
# (stem, downsample, fc static); recipe in ../_base_/cifar100_resnet18.py.
_base_ = '../_base_/cifar100_resnet18.py'
model = dict(backbone=dict(dyn_conv=dict(_delete_=True, type='CondConv', kernel_num=4)))
custom_hooks = []
