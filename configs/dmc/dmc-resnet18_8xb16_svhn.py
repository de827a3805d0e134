# seeds/001 on SVHN (paper: 97.88% top-1): data/svhn/{train,test}_32x32.mat
# (the 'extra' split is not used). Same model and optimiser as CIFAR-10
# (../_base_/dmc-resnet18_cifar10.py); no horizontal flip (digits), 100 epochs.
_base_ = '../_base_/dmc-resnet18_cifar10.py'

data_preprocessor = dict(num_classes=10, mean=[111.61, 113.16, 120.57],
                         std=[50.50, 51.26, 50.21], to_rgb=False)
train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]
train_dataloader = dict(
    dataset=dict(_delete_=True, type='SVHN', data_root='data/svhn', split='train',
                 pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(_delete_=True, type='SVHN', data_root='data/svhn', split='test',
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
param_scheduler = dict(T_max=100, end=100)
train_cfg = dict(max_epochs=100)
