# seeds/001 on CIFAR-10 (paper: 96.85% top-1). Recipe in ../_base_/dmc-resnet18_cifar10.py.
_base_ = '../_base_/dmc-resnet18_cifar10.py'
