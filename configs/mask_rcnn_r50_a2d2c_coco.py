# Mask R-CNN + FPN, 1x schedule, COCO 2017 (data/coco/), ResNet-50 backbone with
# A2D2C+ (4 kernels) in every block conv, temperature 30 -> 1 over epoch 1: the
# detection setting of the A2D2C paper (Zhang et al., Pattern Recognition 2026,
# Sec. 4.5 / Table 7). Run with
#     tools/dist_train.sh configs/mask_rcnn_r50_a2d2c_coco.py 8
# (8 GPUs x 2 images = batch 16, lr 0.02; mmdet's 1x recipe).
_base_ = './a2d2c/mask-rcnn_r50-a2d2c-plus-4x_fpn_1x_coco.py'

# ImageNet-pretrained static ResNet-50 checkpoint to inflate (the paper
# fine-tunes from ImageNet weights), e.g. 'checkpoints/resnet50-0676ba61.pth'
# (torchvision) or an mmpretrain resnet50_8xb32_in1k checkpoint. None = from
# scratch (frozen_stages=-1, norm_eval=False). Edit here, or pass
# `--cfg-options pretrained=PATH` to tools/train.py, which applies the same policy.
pretrained = None

model = dict(
    backbone=dict(
        frozen_stages=1 if pretrained else -1,
        norm_eval=True if pretrained else False,
        init_cfg=dict(_delete_=True, type='Pretrained', checkpoint=pretrained)
        if pretrained else None))
