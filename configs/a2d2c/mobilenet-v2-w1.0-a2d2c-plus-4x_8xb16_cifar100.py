# CIFAR-100 MobileNetV2 x1.0 with A2D2C+ (4 kernels) in every pw/dw conv and the last
# 1x1 (stem, classifier static).
_base_ = ['../static/mobilenet-v2-w1.0-static_8xb16_cifar100.py',
          '../_base_/schedules/temperature_anneal_10e.py']
model = dict(backbone=dict(type='DynMobileNetV2', dyn_conv=dict(type='A2D2CPlus', kernel_num=4),
                           ))
