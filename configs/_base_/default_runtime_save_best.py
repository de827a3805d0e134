# mmpretrain's default runtime, keeping the best (by the first metric) and the last 3
# epoch checkpoints.
_base_ = 'mmpretrain::_base_/default_runtime.py'
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3,
                                     save_best='auto'))
