# Mask R-CNN R-50-FPN 1x COCO, ODConv (4 kernels) in every block conv.
_base_ = '../_base_/mask-rcnn_r50-dyn_fpn_1x_coco.py'
model = dict(backbone=dict(dyn_conv=dict(_delete_=True, type='ODConv', kernel_num=4)))
