# seeds/001 on Imagenette (paper: 93.35% top-1). Recipe in ../_base_/dmc-resnet18_imagenette.py.
_base_ = '../_base_/dmc-resnet18_imagenette.py'
