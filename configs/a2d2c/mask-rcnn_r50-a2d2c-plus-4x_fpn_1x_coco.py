# Mask R-CNN R-50-FPN 1x COCO, A2D2C+ (4 kernels) in every block conv.
# Same model as ../mask_rcnn_r50_a2d2c_coco.py (the paper's Table 7 setting).
_base_ = '../_base_/mask-rcnn_r50-dyn_fpn_1x_coco.py'
model = dict(backbone=dict(dyn_conv=dict(_delete_=True, type='A2D2CPlus', kernel_num=4)))
