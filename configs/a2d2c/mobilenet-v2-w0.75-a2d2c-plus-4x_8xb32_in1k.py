# ImageNet MobileNetV2 x0.75, A2D2C+ (4 kernels) in every pw/dw conv and the last 1x1
# (stem, classifier static); recipe in ../_base_/imagenet_mobilenet-v2.py.
_base_ = '../_base_/imagenet_mobilenet-v2.py'
model = dict(backbone=dict(widen_factor=0.75, dyn_conv=dict(_delete_=True, type='A2D2CPlus', kernel_num=4)))
