# mmpretrain's MobileNetV2 ImageNet classifier, static `MobileNetV2` backbone (leaves
# set widen_factor 0.5/0.75/1.0; the last conv keeps 1280 channels for widen <= 1).
# Dynamic variants set type='DynMobileNetV2' and dyn_conv: every pw/dw conv of the
# inverted residuals and the last 1x1 (stem and classifier static, as official ODConv).
_base_ = ['mmpretrain::_base_/models/mobilenet_v2_1x.py', './mmdyn_classifier.py']

# A pretrained *static* checkpoint (mmpretrain or torchvision layout) to inflate into
# the backbone; None = from scratch. Edit this line, or pass `--cfg-options
# pretrained=PATH` to tools/train.py, which re-applies the init (docs/configs.md).
pretrained = None
model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=pretrained)
                           if pretrained else _base_.scratch_init))
