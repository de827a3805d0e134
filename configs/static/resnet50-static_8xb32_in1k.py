# ImageNet ResNet-50 with static convolutions (baseline); recipe in ../_base_/imagenet_resnet50.py.
_base_ = '../_base_/imagenet_resnet50.py'
model = dict(backbone=dict(_delete_=True, type='ResNet', depth=50, num_stages=4, out_indices=(3, ), style='pytorch',
                           init_cfg=_base_.model.backbone.init_cfg))
custom_hooks = []
