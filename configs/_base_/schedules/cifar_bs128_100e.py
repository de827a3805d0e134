# SGD momentum 0.9, weight decay 5e-4, lr 0.1 for batch 128 (8 GPUs x 16), x0.1 at
# epochs 30/60/90, 100 epochs (chosen; the A2D2C paper only says 100 epochs, SGD
# momentum 0.9, lr x0.1 at fixed epochs; docs/configs.md).
_base_ = 'mmpretrain::_base_/schedules/cifar10_bs128.py'
optim_wrapper = dict(optimizer=dict(weight_decay=5e-4))
param_scheduler = dict(milestones=[30, 60, 90])
train_cfg = dict(max_epochs=100)
