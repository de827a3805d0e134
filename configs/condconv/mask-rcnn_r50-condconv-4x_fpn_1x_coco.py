# Mask R-CNN R-50-FPN 1x COCO, CondConv (4 experts) in every block conv.
# CondConv has no temperature: no TemperatureAnnealHook.
_base_ = '../_base_/mask-rcnn_r50-dyn_fpn_1x_coco.py'
model = dict(backbone=dict(dyn_conv=dict(_delete_=True, type='CondConv', kernel_num=4)))
custom_hooks = []
