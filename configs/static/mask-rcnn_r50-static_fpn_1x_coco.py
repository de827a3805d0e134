# Mask R-CNN R-50-FPN 1x on COCO 2017 with mmdet's static ResNet-50: the baseline, and
# the base of every configs/<method>/mask-rcnn_r50-*_fpn_1x_coco.py. mmdet's 1x recipe
# (12 epochs, SGD lr 0.02 for batch 16 = 8 GPUs x 2); `pretrained` (ImageNet weights,
# and with them mmdet's frozen stem/BN) in ../_base_/models/mask-rcnn_r50_fpn.py.
_base_ = [
    '../_base_/models/mask-rcnn_r50_fpn.py', 'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py', 'mmdet::_base_/default_runtime.py'
]
