# ImageNet-1k ResNet-50 with static convolutions: the baseline, and the base of every
# configs/<method>/resnet50-*_8xb32_in1k.py. Recipe as ./resnet18-static_8xb32_in1k.py.
_base_ = ['../_base_/models/resnet50.py', '../_base_/datasets/imagenet_bs32.py',
          'mmpretrain::_base_/schedules/imagenet_bs256.py', 'mmpretrain::_base_/default_runtime.py']
