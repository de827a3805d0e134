# CIFAR-100 MobileNetV2 x0.75 with CondConv (4 experts; no temperature, no anneal hook)
# in every pw/dw conv and the last 1x1 (stem, classifier static).
_base_ = '../static/mobilenet-v2-w0.75-static_8xb16_cifar100.py'
model = dict(backbone=dict(type='DynMobileNetV2', dyn_conv=dict(type='CondConv', kernel_num=4),
                           ))
