# Static twin of resnet18-cifar-a2d2c-plus_digits.py: the same network with plain
# convolutions (mmpretrain's ResNet_CIFAR, no mmdyn layer, no temperature hook).
_base_ = './resnet18-cifar-a2d2c-plus_digits.py'

model = dict(backbone=dict(_delete_=True, type='ResNet_CIFAR', depth=18, stem_channels=16,
                           base_channels=16))
custom_hooks = []
