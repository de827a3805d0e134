# Shared base of every mmdyn Mask R-CNN config (configs/mask_rcnn/*,
# configs/mask_rcnn_r50_a2d2c_coco.py): mmdet's Mask R-CNN R-50-FPN 1x on COCO
# 2017 (data/coco/), with the ResNet-50 backbone replaced by mmdyn's DynResNet:
# A2D2C+ with 4 kernels in every block conv ('all_block_convs': conv1/conv2/conv3
# of all 16 Bottlenecks; stem, downsample and heads static). Variants only swap
# `model.backbone.dyn_conv` (and drop the temperature hook where the layer has
# no temperature). See docs/configs.md.
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmdyn.models'], allow_failed_imports=False)

# Path of an ImageNet-pretrained *static* ResNet-50 checkpoint (torchvision,
# mmdet or mmpretrain layout); every static kernel is copied into each of the
# K kernels of its dynamic layer ("inflation"). None = train from scratch.
# `tools/train.py CONFIG --cfg-options pretrained=PATH` applies the same policy
# (the expressions below are evaluated when this file is parsed).
pretrained = None

model = dict(
    backbone=dict(
        _delete_=True,
        type='DynResNet',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        # mmdet's defaults (stem + stage 1 frozen, BN statistics frozen) assume
        # pretrained weights; from scratch everything trains.
        frozen_stages=1 if pretrained else -1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True if pretrained else False,
        style='pytorch',
        dyn_conv=dict(type='A2D2CPlus', kernel_num=4),
        dyn_placement='all_block_convs',
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)
        if pretrained else None))

# Temperature of A2D2C/A2D2C+/ODConv/DynamicConv: 30 -> 1 over the first epoch
# (~7.3k iterations at batch 16). The classification recipe anneals over 10 of
# 100 epochs; the 12-epoch 1x fine-tuning schedule keeps that fraction roughly.
custom_hooks = [
    dict(type='TemperatureAnnealHook', start_temperature=30.0,
         end_temperature=1.0, anneal_epochs=1)
]
