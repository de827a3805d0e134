# Mask R-CNN R-50-FPN 1x COCO, DCD (dynamic convolution decomposition, no
# kernel_num; latent dim int(sqrt(C_in))) in every block conv.
# DCD has no temperature: no TemperatureAnnealHook.
_base_ = '../_base_/mask-rcnn_r50-dyn_fpn_1x_coco.py'
model = dict(backbone=dict(dyn_conv=dict(_delete_=True, type='DCD')))
custom_hooks = []
