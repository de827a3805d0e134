# ImageNet-1k MobileNetV2 x0.5 + KernelWarehouse 1x (official
# configs/mobilenetv2_050/kw1x_mobilenetv2_050.json): the stem, every pw/dw conv and the
# last 1x1 are KW with the official sharing ('layer', 'pwconv'): per stage, one warehouse for
# its pw convs and one for its dw convs (classifier static); as many cells as kernel
# partitions.
_base_ = ['../static/mobilenet-v2-w0.5-static_8xb32_in1k.py',
          '../_base_/schedules/kw_temperature_15e.py']
model = dict(backbone=dict(type='DynMobileNetV2', dyn_conv=dict(type='KW', cell_num_ratio=1)))
