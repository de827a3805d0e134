# mmpretrain's ImageNet-1k loaders (32 images per GPU; RandomResizedCrop 224 + flip,
# test: short edge 256 + center crop 224) on `data_root` (mmpretrain's layout).
_base_ = 'mmpretrain::_base_/datasets/imagenet_bs32.py'
data_root = 'data/imagenet'
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
