# SGD momentum 0.9, weight decay 5e-4, lr 0.1 for batch 256 (8 GPUs x 32), 5 linear
# warm-up epochs then cosine, 100 epochs (chosen for DMC on Imagenette/Imagewoof).
_base_ = 'mmpretrain::_base_/schedules/imagenet_bs256.py'
optim_wrapper = dict(optimizer=dict(weight_decay=5e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, T_max=95, begin=5, end=100),
]
