# Mask R-CNN R-50-FPN 1x COCO with CondConv (4 experts; no temperature, no anneal hook)
# in every block conv.
_base_ = '../static/mask-rcnn_r50-static_fpn_1x_coco.py'
model = dict(backbone=dict(type='DynResNet', dyn_conv=dict(type='CondConv', kernel_num=4),
                           dyn_placement='all_block_convs'))
