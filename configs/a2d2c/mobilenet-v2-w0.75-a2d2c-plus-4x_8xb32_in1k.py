# ImageNet-1k MobileNetV2 x0.75 with A2D2C+ (4 kernels) in every pw/dw conv and the last
# 1x1 (stem, classifier static).
_base_ = ['../static/mobilenet-v2-w0.75-static_8xb32_in1k.py',
          '../_base_/schedules/temperature_anneal_10e.py']
model = dict(backbone=dict(type='DynMobileNetV2', dyn_conv=dict(type='A2D2CPlus', kernel_num=4),
                           ))
