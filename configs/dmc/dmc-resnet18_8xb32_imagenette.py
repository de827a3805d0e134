# DMC ResNet-18 with the ImageNet stem on Imagenette at 224x224 (paper: 93.35% top-1).
# Recipe (chosen): ../_base_/schedules/imagenet_bs256_warmup-coslr_100e.py.
_base_ = [
    '../_base_/models/dmc-resnet18.py', '../_base_/datasets/imagenette_bs32.py',
    '../_base_/schedules/imagenet_bs256_warmup-coslr_100e.py',
    '../_base_/default_runtime_save_best.py'
]
