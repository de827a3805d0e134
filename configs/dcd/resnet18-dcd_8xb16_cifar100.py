# CIFAR-100 ResNet-18 with DCD (dynamic convolution decomposition, latent dim
# int(sqrt(C_in)); no kernel_num, no temperature) in every block conv (stem, downsample,
# fc static).
_base_ = '../static/resnet18-static_8xb16_cifar100.py'
model = dict(backbone=dict(type='DynResNetCIFAR', dyn_conv=dict(type='DCD'),
                           dyn_placement='all_block_convs'))
