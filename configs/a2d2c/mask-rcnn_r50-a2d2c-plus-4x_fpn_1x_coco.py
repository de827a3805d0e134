# Mask R-CNN R-50-FPN 1x COCO with A2D2C+ (4 kernels) in every block conv. Same model as
# ../mask_rcnn_r50_a2d2c_coco.py (the A2D2C paper's Table 7 setting).
_base_ = ['../static/mask-rcnn_r50-static_fpn_1x_coco.py',
          '../_base_/schedules/temperature_anneal_1e.py']
model = dict(backbone=dict(type='DynResNet', dyn_conv=dict(type='A2D2CPlus', kernel_num=4),
                           dyn_placement='all_block_convs'))
