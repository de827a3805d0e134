# CIFAR-100 ResNet-18 (3x3 stem, no max-pool) with static convolutions: the baseline,
# and the base of every configs/<method>/resnet18-*_8xb16_cifar100.py. Recipe:
# ../_base_/schedules/cifar_bs128_100e.py.
_base_ = ['../_base_/models/resnet18_cifar.py', '../_base_/datasets/cifar100_bs16.py',
          '../_base_/schedules/cifar_bs128_100e.py', 'mmpretrain::_base_/default_runtime.py']
model = dict(head=dict(num_classes=100))
