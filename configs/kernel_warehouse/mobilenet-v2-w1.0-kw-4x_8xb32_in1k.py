# ImageNet-1k MobileNetV2 x1.0 + KernelWarehouse 4x (official
# configs/mobilenetv2_100/kw4x_mobilenetv2_100.json): the stem, every pw/dw conv and the
# last 1x1 are KW with the official sharing ('layer',): per stage, one warehouse for
# its first pw convs, one for its dw convs and one for its second pw convs (classifier
# static); 4 times as many cells as kernel partitions.
_base_ = ['../static/mobilenet-v2-w1.0-static_8xb32_in1k.py',
          '../_base_/schedules/kw_temperature_15e.py']
model = dict(backbone=dict(type='DynMobileNetV2', dyn_conv=dict(
    type='KW', cell_num_ratio=4, sharing_range=('layer', ))))
