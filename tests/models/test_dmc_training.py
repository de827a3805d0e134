"""A short real training run: DMCResNetCIFAR + AdaptiveLoss + ClassCountsHook on
generated, imbalanced image folders (MMEngine Runner, CPU)."""
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

import mmdyn.models  # noqa: F401  (registers)

# Alphabetical: mmpretrain's CustomDataset numbers the class folders in sorted order.
COUNTS = {'diag': 8, 'left': 12, 'top': 24}


def _image(kind, rng):
    img = rng.integers(0, 60, (16, 16, 3)).astype(np.uint8)
    if kind == 'top':
        img[:8] += 150
    elif kind == 'left':
        img[:, :8] += 150
    else:
        idx = np.arange(16)
        for off in (-1, 0, 1):
            img[idx, np.clip(idx + off, 0, 15)] = 230
    return img


def _write_split(root, counts, seed):
    rng = np.random.default_rng(seed)
    for kind, n in counts.items():
        for i in range(n):
            path = osp.join(root, kind, f'{i}.png')
            os.makedirs(osp.dirname(path), exist_ok=True)
            cv2.imwrite(path, _image(kind, rng))


def _config(tmp_path, max_iters):
    classes = list(COUNTS)
    pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]

    def loader(split, shuffle):
        return dict(batch_size=8, num_workers=0,
                    sampler=dict(type='DefaultSampler', shuffle=shuffle),
                    dataset=dict(type='CustomDataset', data_root=str(tmp_path / split),
                                 classes=classes, pipeline=pipeline))

    return dict(
        default_scope='mmpretrain',
        work_dir=str(tmp_path / 'work'),
        model=dict(
            type='ImageClassifier',
            data_preprocessor=dict(num_classes=3, mean=[80.0] * 3, std=[60.0] * 3),
            backbone=dict(type='DMCResNetCIFAR', depth=18, num_stages=2, strides=(1, 2),
                          dilations=(1, 1), out_indices=(1, ), stem_channels=8,
                          base_channels=8),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=3, in_channels=16,
                      loss=dict(type='AdaptiveLoss', alpha=1.0, gamma=2.0,
                                balance_factor=0.99))),
        train_dataloader=loader('train', True),
        val_dataloader=loader('val', False),
        val_evaluator=dict(type='Accuracy', topk=(1, )),
        optim_wrapper=dict(optimizer=dict(type='Adam', lr=3e-3)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters, val_interval=max_iters),
        val_cfg=dict(),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=5),
                           checkpoint=dict(type='CheckpointHook', interval=max_iters,
                                           by_epoch=False)),
        custom_hooks=[dict(type='ClassCountsHook')],
        randomness=dict(seed=0),
        log_level='WARNING',
    )


def test_short_training_run_learns_and_uses_dataset_class_counts(tmp_path):
    from mmengine.runner import Runner
    torch.set_num_threads(1)
    _write_split(str(tmp_path / 'train'), COUNTS, seed=0)
    _write_split(str(tmp_path / 'val'), {k: 5 for k in COUNTS}, seed=1)
    runner = Runner.from_cfg(_build_cfg(tmp_path, max_iters=60))
    loss_module = runner.model.head.loss_module
    assert not loss_module.has_class_counts  # before training: plain focal loss
    model = runner.train()
    assert loss_module.class_counts == list(COUNTS.values())
    assert loss_module.class_weights[0] > loss_module.class_weights[1] > \
        loss_module.class_weights[2]
    metrics = runner.val_loop.run()
    assert metrics['accuracy/top1'] >= 80.0, metrics  # chance is 33%
    # The weights travel with the checkpoint.
    ckpt = torch.load(osp.join(runner.work_dir, 'iter_60.pth'), map_location='cpu',
                      weights_only=False)
    assert torch.equal(ckpt['state_dict']['head.loss_module.class_weights'],
                       loss_module.class_weights)
    assert model is runner.model


def test_class_counts_hook_without_a_balanced_loss_is_an_error(tmp_path):
    from mmengine.runner import Runner
    _write_split(str(tmp_path / 'train'), {k: 2 for k in COUNTS}, seed=0)
    _write_split(str(tmp_path / 'val'), {k: 1 for k in COUNTS}, seed=1)
    cfg = _build_cfg(tmp_path, max_iters=1)
    cfg.model.head.loss = dict(type='CrossEntropyLoss')
    runner = Runner.from_cfg(cfg)
    with pytest.raises(RuntimeError, match='no loss with set_class_counts'):
        runner.train()


def _build_cfg(tmp_path, max_iters):
    from mmengine.config import Config
    return Config(_config(tmp_path, max_iters))
