# mmpretrain's CIFAR-100 loaders (16 images per GPU; random crop 32 + flip) reading
# the python pickle batches `data_root`/cifar-100-python/{train,test,meta}. Never
# downloads (mmpretrain's default would): missing files are an error.
_base_ = 'mmpretrain::_base_/datasets/cifar100_bs16.py'
data_root = 'data/cifar100'
train_dataloader = dict(dataset=dict(data_root=data_root, download=False))
val_dataloader = dict(dataset=dict(data_root=data_root, download=False))
test_dataloader = val_dataloader
