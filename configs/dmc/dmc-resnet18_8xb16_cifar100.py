# DMC ResNet-18 on CIFAR-100 (paper: 82.39% top-1); recipe as ./dmc-resnet18_8xb16_cifar10.py.
_base_ = ['../_base_/models/dmc-resnet18_cifar.py', '../_base_/datasets/cifar100_bs16.py',
          '../_base_/schedules/cifar_bs128_coslr_200e.py', '../_base_/default_runtime_save_best.py']
model = dict(head=dict(num_classes=100))
