# CIFAR-100 MobileNetV2 x1.0 with static convolutions (ImageNet strides: a 32x32 image
# ends as 1x1): the baseline, and the base of every
# configs/<method>/mobilenet-v2-w1.0-*_8xb16_cifar100.py (and of x0.5 / x0.75).
_base_ = ['../_base_/models/mobilenet_v2_cifar.py', '../_base_/datasets/cifar100_bs16.py',
          '../_base_/schedules/cifar_bs128_100e.py', 'mmpretrain::_base_/default_runtime.py']
model = dict(head=dict(num_classes=100))
