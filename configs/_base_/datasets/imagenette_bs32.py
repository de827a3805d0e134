# Imagenette (`data_root`/{train,val}/<wnid>/*.JPEG, 10 classes) on the ImageNet
# loaders and pipelines of ./imagenet_bs32.py (224x224).
_base_ = './imagenet_bs32.py'
data_root = 'data/imagenette2'
data_preprocessor = dict(num_classes=10)
train_dataloader = dict(dataset=dict(type='Imagenette', data_root=data_root))
val_dataloader = dict(dataset=dict(type='Imagenette', data_root=data_root))
test_dataloader = val_dataloader
