# seeds/001 on Imagewoof (paper: 85.93% top-1), data/imagewoof2 (train/ and val/ with
# 10 WordNet-id folders of dog breeds). Recipe in ../_base_/dmc-resnet18_imagenette.py.
_base_ = '../_base_/dmc-resnet18_imagenette.py'

train_dataloader = dict(dataset=dict(type='Imagewoof', data_root='data/imagewoof2'))
val_dataloader = dict(dataset=dict(type='Imagewoof', data_root='data/imagewoof2'))
test_dataloader = val_dataloader
