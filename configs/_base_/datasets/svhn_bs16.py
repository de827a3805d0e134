# SVHN cropped digits (`data_root`/{train,test}_32x32.mat; the 'extra' split is not
# used) on the CIFAR-10 loaders of ./cifar10_bs16.py: random crop 32 (padding 4), no
# horizontal flip (digits).
_base_ = './cifar10_bs16.py'
data_root = 'data/svhn'
data_preprocessor = dict(num_classes=10, mean=[111.61, 113.16, 120.57],
                         std=[50.50, 51.26, 50.21], to_rgb=False)
train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]
train_dataloader = dict(
    dataset=dict(_delete_=True, type='SVHN', data_root=data_root, split='train',
                 pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(_delete_=True, type='SVHN', data_root=data_root, split='test',
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
