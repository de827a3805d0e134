# CIFAR-100 MobileNetV2 x0.75 with static convolutions: the baseline, and the base of
# every configs/<method>/mobilenet-v2-w0.75-*_8xb16_cifar100.py.
_base_ = './mobilenet-v2-w1.0-static_8xb16_cifar100.py'
model = dict(backbone=dict(widen_factor=0.75))
