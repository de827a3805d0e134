# ImageNet-1k MobileNetV2 x1.0 + KernelWarehouse 1/2x (official
# configs/mobilenetv2_100/kw1d2x_mobilenetv2_100.json, model kw1d2x_mobilenetv2): the
# pw convs of stages 1-5 stay static; the stem, the dw convs and the last stage's pw
# convs and last 1x1 are KW with sharing ('layer',), attention reduction 1/32, and the
# last stage's pw warehouses have half as many cells as partitions, of half the common
# channel count; the classifier is a KW linear layer (KWLinearClsHead's default: the
# official one) behind a dropout of 0.1.
_base_ = ['../static/mobilenet-v2-w1.0-static_8xb32_in1k.py',
          '../_base_/schedules/kw_temperature_15e.py']
model = dict(
    backbone=dict(type='DynMobileNetV2', dyn_conv=dict(
        type='KW', reduction=0.03125, sharing_range=('layer', ),
        static_warehouses=['stage[1-5]_layer_pwconv*'],
        warehouse_overrides={
            f'stage6_layer_pwconv{i}': dict(cell_num_ratio=0.5, cell_inplane_ratio=0.5,
                                            cell_outplane_ratio=0.5)
            for i in (0, 1)})),
    head=dict(type='KWLinearClsHead', dropout=0.1))
