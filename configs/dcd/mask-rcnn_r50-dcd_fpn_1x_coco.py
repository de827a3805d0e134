# Mask R-CNN R-50-FPN 1x COCO with DCD (dynamic convolution decomposition, latent dim
# int(sqrt(C_in)); no kernel_num, no temperature) in every block conv.
_base_ = '../static/mask-rcnn_r50-static_fpn_1x_coco.py'
model = dict(backbone=dict(type='DynResNet', dyn_conv=dict(type='DCD'),
                           dyn_placement='all_block_convs'))
