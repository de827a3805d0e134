# ImageNet-1k MobileNetV2 x0.5 + KernelWarehouse 1/2x (official
# configs/mobilenetv2_050/kw1d2x_mobilenetv2_050.json, model kw1d2x_mobilenetv2): the x1.0
# model of ./mobilenet-v2-w1.0-kw-0.5x_8xb32_in1k.py at half the width (as the static x0.5
# baseline is the x1.0 one at half the width); the classifier stays 1280 -> 1000.
_base_ = './mobilenet-v2-w1.0-kw-0.5x_8xb32_in1k.py'
model = dict(backbone=dict(widen_factor=0.5))
