# ImageNet-1k ResNet-50 with ODConv (4 kernels) in every block conv (stem, downsample,
# fc static).
_base_ = ['../static/resnet50-static_8xb32_in1k.py',
          '../_base_/schedules/temperature_anneal_10e.py']
model = dict(backbone=dict(type='DynResNet', dyn_conv=dict(type='ODConv', kernel_num=4),
                           dyn_placement='all_block_convs'))
