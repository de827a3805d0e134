# ImageNet ResNet-18 with static convolutions (baseline); recipe in ../_base_/imagenet_resnet18.py.
_base_ = '../_base_/imagenet_resnet18.py'
model = dict(backbone=dict(_delete_=True, type='ResNet', depth=18, num_stages=4, out_indices=(3, ), style='pytorch',
                           init_cfg=_base_.model.backbone.init_cfg))
custom_hooks = []
