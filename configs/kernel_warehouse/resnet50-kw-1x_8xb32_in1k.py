# ImageNet-1k ResNet-50 + KernelWarehouse 1x (official configs/resnet50/kw1x_resnet50.json):
# the block convs and strided downsample convs draw from one warehouse per stage (the
# official placement and sharing ('layer', 'conv'); stem and fc static); as many cells as
# kernel partitions, cells of the members' common channel count.
_base_ = ['../static/resnet50-static_8xb32_in1k.py',
          '../_base_/schedules/kw_temperature_20e.py']
model = dict(backbone=dict(type='DynResNet', dyn_conv=dict(type='KW', cell_num_ratio=1)))
