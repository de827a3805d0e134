# ImageNet-1k MobileNetV2 x1.0 with static convolutions: the baseline, and the base of
# every configs/<method>/mobilenet-v2-w1.0-*_8xb32_in1k.py (and of the x0.5 / x0.75
# baselines). Recipe: ../_base_/schedules/imagenet_bs256_coslr_150e.py.
_base_ = [
    '../_base_/models/mobilenet_v2.py', '../_base_/datasets/imagenet_bs32_pil_resize.py',
    '../_base_/schedules/imagenet_bs256_coslr_150e.py', 'mmpretrain::_base_/default_runtime.py'
]
