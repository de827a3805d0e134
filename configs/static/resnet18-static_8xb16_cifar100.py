# CIFAR-100 ResNet-18 with static convolutions (baseline); recipe in ../_base_/cifar100_resnet18.py.
_base_ = '../_base_/cifar100_resnet18.py'
model = dict(backbone=dict(_delete_=True, type='ResNet_CIFAR', depth=18, num_stages=4, out_indices=(3, ), style='pytorch',
                           init_cfg=_base_.model.backbone.init_cfg))
custom_hooks = []
