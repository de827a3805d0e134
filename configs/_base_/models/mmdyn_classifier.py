# What every mmdyn classifier model base (./resnet*.py, ./mobilenet_v2*.py) shares:
# mmdyn's registrations (layers, backbones, hooks) and mmpretrain's from-scratch
# backbone init, used while the model base's `pretrained` is None.
custom_imports = dict(imports=['mmdyn.models'], allow_failed_imports=False)
scratch_init = [
    dict(type='Kaiming', layer=['Conv2d']),
    dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])
]
