# ImageNet ResNet-18, ODConv (4 kernels) in every block conv
# (stem, downsample, fc static); recipe in ../_base_/imagenet_resnet18.py.
_base_ = '../_base_/imagenet_resnet18.py'
model = dict(backbone=dict(dyn_conv=dict(_delete_=True, type='ODConv', kernel_num=4)))
