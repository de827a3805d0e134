# ImageNet-1k MobileNetV2 x0.5 with static convolutions: the baseline, and the base of
# every configs/<method>/mobilenet-v2-w0.5-*_8xb32_in1k.py.
_base_ = './mobilenet-v2-w1.0-static_8xb32_in1k.py'
model = dict(backbone=dict(widen_factor=0.5))
