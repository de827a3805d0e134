# mmdet's Mask R-CNN R-50-FPN with its static ResNet-50. Dynamic variants set
# type='DynResNet', dyn_conv and dyn_placement (stem, downsample and heads static).
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'
custom_imports = dict(imports=['mmdyn.models'], allow_failed_imports=False)

# Path of an ImageNet-pretrained *static* ResNet-50 checkpoint (torchvision, mmdet or
# mmpretrain layout); every static kernel is copied into each of the K kernels of its
# dynamic layer ("inflation"). None = train from scratch (mmdet's torchvision://resnet50
# default is replaced). `tools/train.py CONFIG --cfg-options pretrained=PATH` applies the
# same policy (the expressions below are evaluated when this file is parsed).
pretrained = None
model = dict(
    backbone=dict(
        # mmdet's defaults (stem + stage 1 frozen, BN statistics frozen) assume
        # pretrained weights; from scratch everything trains.
        frozen_stages=1 if pretrained else -1,
        norm_eval=True if pretrained else False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained) if pretrained else None))
