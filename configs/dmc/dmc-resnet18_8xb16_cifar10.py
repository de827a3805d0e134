# DMC ResNet-18 on CIFAR-10 (paper: 96.85% top-1). Model: ../_base_/models/dmc-resnet18_cifar.py;
# recipe (chosen; the abstract gives none): ../_base_/schedules/cifar_bs128_coslr_200e.py.
_base_ = ['../_base_/models/dmc-resnet18_cifar.py', '../_base_/datasets/cifar10_bs16.py',
          '../_base_/schedules/cifar_bs128_coslr_200e.py', '../_base_/default_runtime_save_best.py']
