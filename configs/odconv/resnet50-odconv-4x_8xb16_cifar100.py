# CIFAR-100 ResNet-50, ODConv (4 kernels) in every block conv
# (stem, downsample, fc static); recipe in ../_base_/cifar100_resnet50.py.
_base_ = '../_base_/cifar100_resnet50.py'
model = dict(backbone=dict(dyn_conv=dict(_delete_=True, type='ODConv', kernel_num=4)))
