"""Option handling of tools/train.py and tools/test.py (library:
mmdyn.engine.runner), in process (no training)."""
import os.path as osp

import pytest
import torch

from _tool_helpers import REPO, write_config
from _tools import import_tool


@pytest.fixture
def config(tmp_path):
    return write_config(tmp_path / 'tiny_cls.py', tmp_path / 'data')


def build(tool, argv):
    args, _ = tool.parse_args(argv)
    return tool.build_cfg(args)


def test_defaults_and_cfg_options(config):
    train = import_tool('train')
    cfg = build(train, [config, '--cfg-options', 'train_cfg.max_iters=7'])
    assert cfg.work_dir == osp.join('./work_dirs', 'tiny_cls')
    assert cfg.train_cfg.max_iters == 7 and cfg.launcher == 'none'
    assert cfg.resume is False and cfg.optim_wrapper.get('type', 'OptimWrapper') == 'OptimWrapper'


def test_amp_on_cpu_uses_bf16_wrapper(config):
    train = import_tool('train')
    cfg = build(train, [config, '--amp'])
    if torch.cuda.is_available():
        assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    else:
        assert cfg.optim_wrapper.type == 'CPUAmpOptimWrapper'
        assert cfg.optim_wrapper.dtype == 'bfloat16' and 'loss_scale' not in cfg.optim_wrapper
        from mmengine.optim import build_optim_wrapper
        wrapper = build_optim_wrapper(torch.nn.Linear(2, 2), cfg.optim_wrapper)
        with wrapper.optim_context(torch.nn.Linear(2, 2)):
            assert torch.is_autocast_enabled('cpu')
            assert torch.get_autocast_dtype('cpu') == torch.bfloat16


def test_auto_scale_lr_and_resume(config, tmp_path):
    train = import_tool('train')
    cfg = build(train, [config, '--auto-scale-lr', '--resume'])
    assert cfg.auto_scale_lr.enable is True and cfg.auto_scale_lr.base_batch_size == 2
    assert cfg.resume is True and cfg.load_from is None
    ckpt = tmp_path / 'a.pth'
    ckpt.write_bytes(b'')
    cfg = build(train, [config, '--resume', str(ckpt), '--work-dir', str(tmp_path / 'w')])
    assert cfg.resume is True and cfg.load_from == str(ckpt)
    assert cfg.work_dir == str(tmp_path / 'w')
    with pytest.raises(RuntimeError, match='auto_scale_lr = dict\\(base_batch_size'):
        build(train, [config, '--auto-scale-lr', '--cfg-options', 'auto_scale_lr=None'])


def test_test_tool_options(config, tmp_path):
    test = import_tool('test')
    ckpt = tmp_path / 'a.pth'
    ckpt.write_bytes(b'')
    cfg = build(test, [config, str(ckpt), '--show-dir', str(tmp_path / 'vis')])
    assert cfg.load_from == str(ckpt) and cfg.resume is False
    assert cfg.default_hooks.visualization.enable is True
    assert cfg.default_hooks.visualization.out_dir == str(tmp_path / 'vis')
    with pytest.raises(SystemExit):
        test.parse_args([config, str(ckpt), '--out', 'preds.json'])


def test_cfg_options_pretrained_reapplies_the_init_policy(tmp_path):
    """mmdyn configs derive init_cfg from `pretrained` at parse time; train.py
    re-applies it for --cfg-options pretrained=PATH (detector: also freezes)."""
    train = import_tool('train')
    detector = osp.join(REPO, 'configs', 'mask_rcnn_r50_a2d2c_coco.py')
    ckpt = tmp_path / 'r50.pth'
    torch.save({'state_dict': {}}, ckpt)
    cfg = build(train, [detector])
    assert cfg.model.backbone.init_cfg is None and cfg.model.backbone.frozen_stages == -1
    cfg = build(train, [detector, '--cfg-options', f'pretrained={ckpt}'])
    assert cfg.model.backbone.init_cfg == dict(type='Pretrained', checkpoint=str(ckpt))
    assert cfg.model.backbone.frozen_stages == 1 and cfg.model.backbone.norm_eval is True
    classifier = osp.join(REPO, 'configs', 'a2d2c', 'resnet18-a2d2c-plus-4x_8xb32_in1k.py')
    cfg = build(train, [classifier, '--cfg-options', f'pretrained={ckpt}'])
    assert cfg.model.backbone.init_cfg == dict(type='Pretrained', checkpoint=str(ckpt))
    with pytest.raises(FileNotFoundError, match='pretrained checkpoint not found'):
        build(train, [detector, '--cfg-options', f'pretrained={tmp_path / "missing.pth"}'])


@pytest.mark.parametrize('tool', ['train', 'test'])
def test_cfg_options_data_root_reaches_every_dataloader(tool, config, tmp_path):
    """Both tools read the config with mmdyn.engine.config.load_config: a new
    top-level data_root (here from --cfg-options) re-roots every dataset."""
    ckpt = tmp_path / 'a.pth'
    ckpt.write_bytes(b'')
    new_root = str(tmp_path / 'elsewhere')
    argv = [config] + ([str(ckpt)] if tool == 'test' else []) + [
        '--cfg-options', f'data_root={new_root}']
    cfg = build(import_tool(tool), argv)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.data_root == new_root


@pytest.mark.parametrize('tool', ['train', 'test'])
def test_explicit_dataloader_root_wins_over_the_top_level_one(tool, config, tmp_path):
    """--cfg-options keeps MMEngine's semantics: a dataloader's own data_root given
    on the command line is not re-rooted to the config's top-level data_root."""
    ckpt = tmp_path / 'a.pth'
    ckpt.write_bytes(b'')
    top, own = str(tmp_path / 'top'), str(tmp_path / 'own')
    loaders = ('train_dataloader', 'val_dataloader', 'test_dataloader')
    argv = [config] + ([str(ckpt)] if tool == 'test' else []) + [
        '--cfg-options', f'data_root={top}'] + [f'{key}.dataset.data_root={own}'
                                                for key in loaders]
    cfg = build(import_tool(tool), argv)
    assert cfg.data_root == top
    for key in loaders:
        assert cfg[key].dataset.data_root == own
