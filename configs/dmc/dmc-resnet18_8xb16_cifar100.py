# seeds/001 on CIFAR-100 (paper: 82.39% top-1), data/cifar100 (python pickle batches).
# Same recipe as CIFAR-10 (../_base_/dmc-resnet18_cifar10.py), CIFAR-100 statistics.
_base_ = '../_base_/dmc-resnet18_cifar10.py'

model = dict(head=dict(num_classes=100))
data_preprocessor = dict(num_classes=100, mean=[129.304, 124.070, 112.434],
                         std=[68.170, 65.392, 70.418])
train_dataloader = dict(dataset=dict(type='CIFAR100', data_root='data/cifar100'))
val_dataloader = dict(dataset=dict(type='CIFAR100', data_root='data/cifar100'))
test_dataloader = val_dataloader
