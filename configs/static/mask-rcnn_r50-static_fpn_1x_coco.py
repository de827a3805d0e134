# Mask R-CNN R-50-FPN 1x COCO with mmdet's static ResNet-50 (the baseline),
# same init/freezing rules as the dynamic configs (`pretrained` of the base).
_base_ = '../_base_/mask-rcnn_r50-dyn_fpn_1x_coco.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=_base_.model.backbone.frozen_stages,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=_base_.model.backbone.norm_eval,
        style='pytorch',
        init_cfg=_base_.model.backbone.init_cfg))
custom_hooks = []
