# SGD momentum 0.9, weight decay 5e-4, lr 0.1 for batch 128 (8 GPUs x 16), cosine to 0
# over 200 epochs (chosen for the DMC and GTSRB systems, whose sources give no recipe;
# their configs shorten it to 100 / 50 epochs where documented).
_base_ = 'mmpretrain::_base_/schedules/cifar10_bs128.py'
optim_wrapper = dict(optimizer=dict(weight_decay=5e-4))
param_scheduler = dict(
    _delete_=True, type='CosineAnnealingLR', by_epoch=True, T_max=200, begin=0, end=200)
