# Shared base of configs/imagenet/mobilenet-v2-*: ImageNet-1k (data/imagenet),
# MobileNetV2 classifier whose backbone is mmdyn's DynMobileNetV2 with A2D2C+
# (4 kernels) in every pw/dw conv of the inverted residuals and the last 1x1
# (stem and classifier static, as official ODConv). Variants set widen_factor
# (0.5/0.75/1.0; the last conv keeps 1280 channels for widen <= 1) and dyn_conv.
# Recipe (ODConv's MobileNetV2 recipe; the paper says 150 epochs): SGD momentum
# 0.9, weight decay 4e-5, lr 0.05 for batch 256 (8 GPUs x 32), cosine to 0 over
# 150 epochs.
_base_ = 'mmpretrain::mobilenet_v2/mobilenet-v2_8xb32_in1k.py'

custom_imports = dict(imports=['mmdyn.models'], allow_failed_imports=False)

# Path of a pretrained *static* checkpoint (mmpretrain or torchvision layout) to
# inflate into the dynamic backbone; None = train from scratch (mmpretrain's
# default Kaiming init). Edit this line, or pass `--cfg-options pretrained=PATH`
# to tools/train.py (which re-applies the init below; see docs/configs.md).
pretrained = None

model = dict(
    backbone=dict(
        type='DynMobileNetV2',
        widen_factor=1.0,
        dyn_conv=dict(type='A2D2CPlus', kernel_num=4),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained) if pretrained else [
            dict(type='Kaiming', layer=['Conv2d']),
            dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])]),
    head=dict(num_classes=1000, in_channels=1280))

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=4e-5))
param_scheduler = dict(
    _delete_=True, type='CosineAnnealingLR', by_epoch=True, T_max=150,
    eta_min=0, begin=0, end=150)
train_cfg = dict(by_epoch=True, max_epochs=150, val_interval=1)
auto_scale_lr = dict(base_batch_size=256)

# Temperature of A2D2C/A2D2C+/ODConv/DynamicConv: 30 -> 1 over the first 10
# epochs (the paper's and DynamicConv/ODConv's schedule). The CondConv, DCD and
# static variants set custom_hooks = [] (no temperature).
custom_hooks = [
    dict(type='TemperatureAnnealHook', start_temperature=30.0,
         end_temperature=1.0, anneal_epochs=10)
]
