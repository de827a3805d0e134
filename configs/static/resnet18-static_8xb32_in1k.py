# ImageNet-1k ResNet-18 with static convolutions: the baseline, and the base of every
# configs/<method>/resnet18-*_8xb32_in1k.py. Recipe (the A2D2C paper's / ODConv's
# ResNet recipe): SGD momentum 0.9, weight decay 1e-4, lr 0.1 for batch 256 (8 GPUs x
# 32), x0.1 at epochs 30/60/90, 100 epochs (mmpretrain's imagenet_bs256).
_base_ = ['../_base_/models/resnet18.py', '../_base_/datasets/imagenet_bs32.py',
          'mmpretrain::_base_/schedules/imagenet_bs256.py', 'mmpretrain::_base_/default_runtime.py']
