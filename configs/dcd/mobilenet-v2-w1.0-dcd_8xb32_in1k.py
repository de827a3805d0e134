# ImageNet-1k MobileNetV2 x1.0 with DCD (dynamic convolution decomposition, latent dim
# int(sqrt(C_in)); no kernel_num, no temperature) in every pw/dw conv and the last 1x1
# (stem, classifier static).
_base_ = '../static/mobilenet-v2-w1.0-static_8xb32_in1k.py'
model = dict(backbone=dict(type='DynMobileNetV2', dyn_conv=dict(type='DCD')))
