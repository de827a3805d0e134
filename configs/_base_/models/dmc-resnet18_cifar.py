# The dynamic mask convolution ResNet of Jiang, You, Zhang, "Dynamic mask convolution
# for image classification networks" (CAAI Trans. Intell. Syst., 2026; abstract only,
# design in docs/dmc_design.md), for 32x32 inputs: mmpretrain's ResNet_CIFAR-18 (3x3
# stem, no max-pool) whose second 3x3 conv of every BasicBlock is a DynamicMaskConv2d
# (branches with dilations 1/2/3, a sigmoid spatial mask per branch, 1x1 fusion) and
# whose residual branches end in an AdaptiveEnhancement (channel + pixel attention)
# before the residual sum.
_base_ = 'mmpretrain::_base_/models/resnet18_cifar.py'
custom_imports = dict(imports=['mmdyn.models'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='DMCResNetCIFAR',
        dyn_conv=dict(type='DMC', branch_dilations=(1, 2, 3), mask='spatial',
                      fusion='conv1x1'),
        dyn_convs=('conv2', ),
        enhance=dict(type='AdaptiveEnhancement', reduction=16, pixel_reduction=8,
                     mode='sequential')))
