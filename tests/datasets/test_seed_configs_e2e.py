"""The shipped configs of the DMC paper and of the multi-scale fusion + adaptive loss
system (docs/references.md), end to end on fixture files in the real formats: MMEngine
Runner training (one short epoch), validation and test."""
import os.path as osp

import torch
from mmengine.config import Config

import mmdyn.models  # noqa: F401  (registers)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _runner(config, tmp_path, data_root, **options):
    from mmengine.runner import Runner
    cfg = Config.fromfile(osp.join(ROOT, config))
    cfg.work_dir = str(tmp_path / 'work')
    for split in ('train', 'val', 'test'):
        loader = cfg[f'{split}_dataloader']
        loader.batch_size, loader.num_workers = 16, 0
        loader.pop('persistent_workers', None)
        loader.dataset.data_root = data_root
    cfg.train_cfg.max_epochs = 1
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.log_level = 'WARNING'
    cfg.merge_from_dict(options)
    return Runner.from_cfg(cfg)


def test_gtsrb_system_trains_validates_and_tests(tmp_path, gtsrb_factory):
    """ODConv + fusion neck + AdaptiveLoss with the counts of the fixture's training split."""
    torch.set_num_threads(1)
    gtsrb_files = gtsrb_factory(tracks_per_class=[2 + (c % 5 == 0) for c in range(43)],
                                frames=1, num_test=8)
    runner = _runner('configs/msff/resnet18-odconv-4x-msff-adaptive-loss_8xb16_gtsrb.py',
                     tmp_path, gtsrb_files.root)
    runner.train()
    loss = runner.model.head.loss_module
    train = runner.train_dataloader.dataset
    expected = [0] * 43
    for i in range(len(train)):
        expected[train.get_data_info(i)['gt_label']] += 1
    assert loss.class_counts == expected and sum(expected) == len(train)
    assert len(runner.val_dataloader.dataset) + len(train) == len(gtsrb_files.train)
    metrics = runner.test()
    assert 0.0 <= metrics['accuracy/top1'] <= 100.0
    assert len(runner.test_dataloader.dataset) == len(gtsrb_files.test)


def test_dmc_svhn_config_trains_and_tests(tmp_path, svhn_factory):
    torch.set_num_threads(1)
    root, _ = svhn_factory('train', num=16)
    svhn_factory('test', num=8)
    runner = _runner('configs/dmc/dmc-resnet18_8xb16_svhn.py', tmp_path, root)
    runner.train()
    assert osp.exists(osp.join(runner.work_dir, 'epoch_1.pth'))
    metrics = runner.test()
    assert 'accuracy/top1' in metrics
