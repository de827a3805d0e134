# CIFAR-100 MobileNetV2 x0.75, CondConv (4 experts; no temperature, no anneal hook) in every pw/dw conv and the last 1x1
# (stem, classifier static); recipe in ../_base_/cifar100_mobilenet-v2.py.
_base_ = '../_base_/cifar100_mobilenet-v2.py'
model = dict(backbone=dict(widen_factor=0.75, dyn_conv=dict(_delete_=True, type='CondConv', kernel_num=4)))
custom_hooks = []
