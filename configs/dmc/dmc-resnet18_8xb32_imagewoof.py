# DMC ResNet-18 on Imagewoof (paper: 85.93% top-1); recipe as
# ./dmc-resnet18_8xb32_imagenette.py.
_base_ = [
    '../_base_/models/dmc-resnet18.py', '../_base_/datasets/imagewoof_bs32.py',
    '../_base_/schedules/imagenet_bs256_warmup-coslr_100e.py',
    '../_base_/default_runtime_save_best.py'
]
