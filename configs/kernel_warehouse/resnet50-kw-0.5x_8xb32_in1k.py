# ImageNet-1k ResNet-50 + KernelWarehouse 1/2x (official configs/resnet50/kw1d2x_resnet50.json):
# the block convs and strided downsample convs draw from one warehouse per stage (the
# official placement and sharing ('layer', 'conv'); stem and fc static); half as many
# cells as kernel partitions, cells of half the members' common channel count; the
# logits of the other layers' cells come from 1/16 as many basis logits
# (nonlocal_basis_ratio).
_base_ = ['../static/resnet50-static_8xb32_in1k.py',
          '../_base_/schedules/kw_temperature_20e.py']
model = dict(backbone=dict(type='DynResNet', dyn_conv=dict(
    type='KW', cell_num_ratio=0.5, cell_inplane_ratio=0.5, cell_outplane_ratio=0.5,
    nonlocal_basis_ratio=0.0625)))
