# MobileNetV2 (./mobilenet_v2.py, with its `pretrained`) under the CIFAR head of
# mmpretrain's *_cifar models (top-1 only). mmpretrain's MobileNetV2 has no stride
# option, so the ImageNet strides stay: a 32x32 image ends as a 1x1 map
# (documented limitation, docs/configs.md).
_base_ = './mobilenet_v2.py'
model = dict(head=dict(_delete_=True, type='LinearClsHead', num_classes=10, in_channels=1280,
                       loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))
