# mmpretrain's CIFAR-10 loaders (16 images per GPU; random crop 32 + flip) reading
# `data_root`/cifar-10-batches-py. Never downloads (mmpretrain's default would).
_base_ = 'mmpretrain::_base_/datasets/cifar10_bs16.py'
data_root = 'data/cifar10'
train_dataloader = dict(dataset=dict(data_root=data_root, download=False))
val_dataloader = dict(dataset=dict(data_root=data_root, download=False))
test_dataloader = val_dataloader
