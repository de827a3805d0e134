# DMC ResNet-18 on SVHN (paper: 97.88% top-1): the model and optimiser of
# ./dmc-resnet18_8xb16_cifar10.py, no horizontal flip (digits), 100 epochs.
_base_ = ['../_base_/models/dmc-resnet18_cifar.py', '../_base_/datasets/svhn_bs16.py',
          '../_base_/schedules/cifar_bs128_coslr_200e.py', '../_base_/default_runtime_save_best.py']
param_scheduler = dict(T_max=100, end=100)
train_cfg = dict(max_epochs=100)
