# ODConv's MobileNetV2 recipe (the A2D2C paper says 150 epochs): SGD momentum 0.9,
# weight decay 4e-5, lr 0.05 for batch 256 (8 GPUs x 32), cosine to 0 over 150 epochs.
_base_ = 'mmpretrain::_base_/schedules/imagenet_bs256_epochstep.py'
optim_wrapper = dict(optimizer=dict(lr=0.05))
param_scheduler = dict(
    _delete_=True, type='CosineAnnealingLR', by_epoch=True, T_max=150,
    eta_min=0, begin=0, end=150)
train_cfg = dict(max_epochs=150)
