# Imagewoof (`data_root`/{train,val}/<wnid>/*.JPEG, 10 dog breeds) on the loaders of
# ./imagenette_bs32.py.
_base_ = './imagenette_bs32.py'
data_root = 'data/imagewoof2'
train_dataloader = dict(dataset=dict(type='Imagewoof', data_root=data_root))
val_dataloader = dict(dataset=dict(type='Imagewoof', data_root=data_root))
test_dataloader = val_dataloader
