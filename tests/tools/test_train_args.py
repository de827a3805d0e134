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


# ------------------------------------------------ --cfg-options checked at the merge
@pytest.mark.parametrize('option, message', [
    ('max_epochs=abc', "--cfg-options max_epochs=abc: the config has no top-level key "
     "'max_epochs' and nothing reads it, so it would change nothing; did you mean "
     "train_cfg.max_iters or "),
    ('lr=abc', "--cfg-options lr=abc: the config has no top-level key 'lr' and nothing reads "
     "it, so it would change nothing; did you mean optim_wrapper.optimizer.lr?"),
    ('max_iters=3', 'did you mean train_cfg.max_iters?'),
    ('seed=1', 'did you mean randomness.seed?'),
    ('foo=1', "no top-level key 'foo' and nothing reads it, so it would change nothing; set a "
     "key of the config (KEY.SUBKEY=VALUE)"),
    ('train_cfg.max_iters=abc', "--cfg-options train_cfg.max_iters=abc: train_cfg.max_iters is "
     "4 in the config, expected a number, got the string 'abc'"),
    ('optim_wrapper.optimizer.lr=abc', 'optim_wrapper.optimizer.lr is 0.05 in the config, '
     "expected a number, got the string 'abc'"),
    ('resume=maybe', "resume is False in the config, expected true or false, got the string "
     "'maybe'"),
    ('model.backbone.depth.x=1', '--cfg-options model.backbone.depth.x=1 cannot be merged '
     'into the config: '),
], ids=lambda v: v if '=' in v and len(v) < 40 else '')
def test_cfg_options_that_would_change_nothing_or_break_are_refused(config, option, message):
    """MMEngine merged max_epochs=abc as a new top-level key that nothing reads
    (the run went on with the config's length) and lr=abc / max_iters=abc as
    strings that failed deep inside the loop or the optimizer."""
    train = import_tool('train')
    with pytest.raises(ValueError) as exc:
        build(train, [config, '--cfg-options', option])
    assert message in str(exc.value) and '\n' not in str(exc.value)


def test_refused_cfg_option_is_an_argparse_error_of_the_tool(config, capsys):
    with pytest.raises(SystemExit) as exc:
        import_tool('train').main([config, '--cfg-options', 'lr=0.1'])
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(
        'did you mean optim_wrapper.optimizer.lr?')


def test_cfg_options_that_stay_allowed(config, tmp_path):
    """Runner settings the config lacks, new nested keys, list indices, None,
    and numbers for numbers are merged as before."""
    cfg = build(import_tool('train'), [config, '--cfg-options', f'load_from={tmp_path}/a.pth',
                                       'experiment_name=tiny', 'randomness.seed=3',
                                       'default_hooks.checkpoint.max_keep_ckpts=2',
                                       'optim_wrapper.paramwise_cfg.norm_decay_mult=0',
                                       'pipeline.0.type=LoadImageFromFile',
                                       'train_dataloader.num_workers=None',
                                       'optim_wrapper.optimizer.lr=1', 'train_cfg.by_epoch=true'])
    assert cfg.load_from == f'{tmp_path}/a.pth' and cfg.experiment_name == 'tiny'
    assert cfg.randomness.seed == 3 and cfg.default_hooks.checkpoint.max_keep_ckpts == 2
    assert cfg.optim_wrapper.paramwise_cfg.norm_decay_mult == 0
    assert cfg.optim_wrapper.optimizer.lr == 1 and cfg.train_cfg.by_epoch is True
    assert cfg.train_dataloader.num_workers is None
