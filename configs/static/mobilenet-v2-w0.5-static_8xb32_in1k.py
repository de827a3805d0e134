# ImageNet MobileNetV2 x0.5 with static convolutions (baseline); recipe in ../_base_/imagenet_mobilenet-v2.py.
_base_ = '../_base_/imagenet_mobilenet-v2.py'
model = dict(backbone=dict(_delete_=True, type='MobileNetV2', widen_factor=0.5,
                           init_cfg=_base_.model.backbone.init_cfg))
custom_hooks = []
