# CIFAR-100 ResNet-18, A2D2C+ (4 kernels) in every block conv
# (stem, downsample, fc static); recipe in ../_base_/cifar100_resnet18.py.
_base_ = '../_base_/cifar100_resnet18.py'
model = dict(backbone=dict(dyn_conv=dict(_delete_=True, type='A2D2CPlus', kernel_num=4)))
