# ImageNet-1k ResNet-18 + KernelWarehouse 1/4x (official configs/resnet18/kw1d4x_resnet18.json):
# the block convs and strided downsample convs draw from one warehouse per stage (the
# official placement and sharing ('layer', 'conv'); stem and fc static); 1/4 as many
# cells as kernel partitions, cells of half the members' common channel count.
_base_ = ['../static/resnet18-static_8xb32_in1k.py',
          '../_base_/schedules/kw_temperature_20e.py']
model = dict(backbone=dict(type='DynResNet', dyn_conv=dict(
    type='KW', cell_num_ratio=0.25, cell_inplane_ratio=0.5, cell_outplane_ratio=0.5)))
