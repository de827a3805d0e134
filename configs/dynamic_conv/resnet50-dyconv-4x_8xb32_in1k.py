# ImageNet ResNet-50, DynamicConv (alias DyConv, 4 kernels) in every block conv
# (stem, downsample, fc static); recipe in ../_base_/imagenet_resnet50.py.
_base_ = '../_base_/imagenet_resnet50.py'
model = dict(backbone=dict(dyn_conv=dict(_delete_=True, type='DyConv', kernel_num=4)))
