# mmpretrain's ResNet-50 ImageNet classifier, static `ResNet` backbone.
# Dynamic variants set type='DynResNet', dyn_conv and dyn_placement.
_base_ = ['mmpretrain::_base_/models/resnet50.py', './mmdyn_classifier.py']

# A pretrained *static* checkpoint (mmpretrain or torchvision layout) to inflate into
# the backbone; None = from scratch. Edit this line, or pass `--cfg-options
# pretrained=PATH` to tools/train.py, which re-applies the init (docs/configs.md).
pretrained = None
model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=pretrained)
                           if pretrained else _base_.scratch_init))
