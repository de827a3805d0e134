# ImageNet-1k MobileNetV2 x0.5 with DynamicConv (4 kernels; alias 'DyConv', as mmdet's
# own 'DynamicConv' is Sparse R-CNN's head) in every pw/dw conv and the last 1x1 (stem,
# classifier static).
_base_ = ['../static/mobilenet-v2-w0.5-static_8xb32_in1k.py',
          '../_base_/schedules/temperature_anneal_10e.py']
model = dict(backbone=dict(type='DynMobileNetV2', dyn_conv=dict(type='DyConv', kernel_num=4)))
