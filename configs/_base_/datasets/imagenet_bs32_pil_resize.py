# mmpretrain's ImageNet-1k loaders with pillow resizing (its MobileNetV2 recipe) on
# `data_root` (mmpretrain's layout).
_base_ = 'mmpretrain::_base_/datasets/imagenet_bs32_pil_resize.py'
data_root = 'data/imagenet'
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
