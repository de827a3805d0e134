"""One-line errors naming the argument and what is expected, where a user used
to get a traceback from deep inside torch / MMEngine or a bare assertion."""
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch

from _tools import import_tool

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOLS = osp.join(REPO, 'tools')

# A tiny MMPretrain classifier config (no custom hook modules): parsing it is
# all the argument checks below need.
TINY_CFG = """default_scope = 'mmpretrain'
custom_imports = dict(imports=['mmdyn.models'], allow_failed_imports=False)
model = dict(
    type='ImageClassifier',
    backbone=dict(type='ResNet_CIFAR', depth=18, num_stages=2, strides=(1, 2),
                  dilations=(1, 1), out_indices=(1, ), stem_channels=8, base_channels=8,
                  conv_cfg=dict(type='A2D2CPlus', kernel_num=2, num_points=8)),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=2, in_channels=16,
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0), topk=(1, )))
data_preprocessor = dict(num_classes=2, mean=[127.5] * 3, std=[64.0] * 3, to_rgb=True)
pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
dataset = dict(type='CustomDataset', data_root='{data_root}', pipeline=pipeline)
train_dataloader = dict(batch_size=2, num_workers=0, dataset=dataset,
                        sampler=dict(type='DefaultSampler', shuffle=True))
test_dataloader = dict(batch_size=2, num_workers=0, dataset=dataset,
                       sampler=dict(type='DefaultSampler', shuffle=False))
test_evaluator = dict(type='Accuracy', topk=(1, ))
test_cfg = dict()
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9))
train_cfg = dict(by_epoch=False, max_iters=4)
default_hooks = dict(logger=dict(type='LoggerHook', interval=1),
                     checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False))
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork'),
               dist_cfg=dict(backend='nccl'))
log_level = 'WARNING'
randomness = dict(seed=0)
"""


def one_line(text):
    """The message, checked to be a single line."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


def argparse_error(capsys):
    """The error line of an argparse exit (the last line of stderr)."""
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.fixture
def tiny_config(tmp_path):
    from PIL import Image
    data = tmp_path / 'data'
    for c in ('a', 'b'):
        os.makedirs(data / c)
        for i in range(2):
            Image.fromarray(np.full((8, 8, 3), 60 * i + 100 * (c == 'b'), np.uint8)).save(
                data / c / f'{i}.png')
    path = tmp_path / 'tiny.py'
    path.write_text(TINY_CFG.replace('{data_root}', str(data)))
    return str(path)


# --------------------------------------------------------------- layers/models
@pytest.mark.parametrize('value, error', [('x', TypeError), (None, TypeError),
                                          (True, TypeError), (2, ValueError)])
@pytest.mark.parametrize('layer', ['ODConv2d', 'DynamicConv2d'])
def test_reduction_must_be_a_fraction(layer, value, error):
    import mmdyn.ops as ops
    with pytest.raises(error) as exc:
        getattr(ops, layer)(8, 8, 3, reduction=value)
    message = one_line(str(exc.value))
    assert message.startswith('reduction must be ') and '(0, 1]' in message
    assert repr(value) in message


@pytest.mark.parametrize('scope', ['mmpretrain', 'mmdet'])
@pytest.mark.parametrize('out_indices', [(5, ), (-1, ), (), (0, 4), 3, ('1', )])
def test_dyn_resnet_out_indices(scope, out_indices):
    import importlib

    import mmdyn.models  # noqa: F401
    registry = importlib.import_module(f'{scope}.registry').MODELS
    with pytest.raises(ValueError) as exc:
        registry.build(dict(type='DynResNet', depth=18, out_indices=out_indices,
                            dyn_conv=dict(type='A2D2CPlus', kernel_num=2)))
    message = one_line(str(exc.value))
    assert message == (f'out_indices must be a non-empty list of stage indices in [0, 3] '
                       f'(num_stages=4), got {out_indices!r}')


def test_dyn_resnet_valid_out_indices_still_build():
    import mmdyn.models  # noqa: F401
    from mmpretrain.registry import MODELS
    model = MODELS.build(dict(type='DynResNetCIFAR', depth=18, num_stages=2, strides=(1, 2),
                              dilations=(1, 1), out_indices=(0, 1), base_channels=8,
                              stem_channels=8, dyn_conv=dict(type='A2D2CPlus', kernel_num=2)))
    assert len(model(torch.zeros(1, 3, 8, 8))) == 2
    with pytest.raises(ValueError, match=r'in \[0, 1\] \(num_stages=2\), got \(2,\)'):
        MODELS.build(dict(type='DynResNetCIFAR', depth=18, num_stages=2, strides=(1, 2),
                          dilations=(1, 1), out_indices=(2, )))


def test_svhn_mat_with_no_image(tmp_path):
    from scipy.io import savemat

    from mmdyn.datasets.svhn import load_svhn_mat
    path = tmp_path / 'train_32x32.mat'
    savemat(str(path), dict(X=np.zeros((32, 32, 3, 0), np.uint8), y=np.zeros((0, 1), np.uint8)))
    with pytest.raises(ValueError) as exc:
        load_svhn_mat(str(path))
    assert one_line(str(exc.value)) == (f'{path}: X holds 0 images (shape (32, 32, 3, 0)); '
                                        'expected (32, 32, 3, N) with N >= 1')


# ----------------------------------------------------------------- shell tools
@pytest.mark.parametrize('argv, env, expected', [
    (['dist_train.sh', 'cfg.py'], dict(GPUS='0'), "GPUS must be a positive integer "
     "(processes per node), got '0'"),
    (['dist_train.sh', 'cfg.py', '0'], {}, "GPUS must be a positive integer "
     "(processes per node), got '0'"),
    (['dist_train.sh', 'cfg.py', '--work-dir', 'w'], {}, "GPUS must be a positive integer "
     "(processes per node), got '--work-dir'"),
    (['dist_test.sh', 'cfg.py', 'c.pth'], dict(GPUS='two'), "GPUS must be a positive integer "
     "(processes per node), got 'two'"),
    (['dist_train.sh', 'cfg.py', '2'], dict(PORT='70000'), "PORT must be an integer in "
     "[1, 65535], got '70000'"),
    (['dist_train.sh', 'cfg.py', '2'], dict(NNODES='2', NODE_RANK='2'), 'NODE_RANK must be '
     "an integer in [0, NNODES-1] = [0, 1], got '2'"),
])
def test_dist_scripts_check_their_numbers(tmp_path, argv, env, expected):
    script, *args = argv
    proc = subprocess.run(['bash', osp.join(TOOLS, script), *args], cwd=tmp_path,
                          env=dict(os.environ, **env), capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 2
    assert one_line(proc.stderr) == f'error: {expected}'


# ----------------------------------------------------------------- python tools
@pytest.mark.parametrize('tool', ['train', 'test'])
@pytest.mark.parametrize('inside', [False, True])
def test_work_dir_is_a_file(tool, inside, tiny_config, tmp_path, capsys):
    a_file = tmp_path / 'not_a_dir'
    a_file.write_text('')
    work_dir = a_file / 'sub' if inside else a_file
    ckpt = tmp_path / 'x.pth'
    torch.save({}, ckpt)
    argv = [tiny_config] + ([str(ckpt)] if tool == 'test' else [])
    with pytest.raises(SystemExit) as exc:
        import_tool(tool).main(argv + ['--work-dir', str(work_dir)])
    assert exc.value.code == 2
    what = f'is inside {a_file}, which is a file' if inside else 'is a file'
    assert argparse_error(capsys).endswith(
        f'error: --work-dir must be a directory (created if missing), but {work_dir} {what}')


@pytest.mark.parametrize('content, message', [
    (b'model:\n  type: ResNet\n', 'is not valid Python: line 1: invalid syntax (a config is '
     'a Python file of assignments such as model = dict(...))'),
    (b'a = 1\nb = dict(\n', "is not valid Python: line 2: '(' was never closed"),
    (b'\x80\x03}q\x00.\x00binary', 'is a binary file, not a Python config'),
    (b'a = 1\nname = "caf\xe9"\n', 'is not a Python config: line 2 is not UTF-8 text'),
    (b'a = 1\nmodel = dict(type=ResNet)\n',
     "could not be read (line 2): NameError: name 'ResNet' is not defined"),
], ids=['yaml', 'syntax-error', 'binary', 'latin-1', 'name-error'])
def test_config_that_is_not_python_names_the_file_and_line(tmp_path, content, message):
    """MMEngine raised a SyntaxError / UnicodeDecodeError / NameError traceback
    (the decode error without the file's name)."""
    from mmdyn.engine.config import load_config
    path = tmp_path / 'cfg.py'
    path.write_bytes(content)
    with pytest.raises(ValueError) as exc:
        load_config(str(path))
    assert one_line(str(exc.value)).startswith(f'config {path} {message}')


def test_config_errors_are_argparse_errors_of_the_tools(tmp_path, capsys):
    path = tmp_path / 'cfg.yaml.py'
    path.write_text('model:\n  type: ResNet\n')
    other = tmp_path / 'cfg.txt'
    other.write_text('a = 1\n')
    for config, message in ((path, f'config {path} is not valid Python: line 1'),
                            (other, f'config {other} must be a .py (or .json/.yaml/.yml) '
                             'file, not .txt')):
        with pytest.raises(SystemExit) as exc:
            import_tool('train').main([str(config), '--work-dir', str(tmp_path / 'w')])
        assert exc.value.code == 2
        assert f'error: {message}' in argparse_error(capsys)


@pytest.mark.parametrize('tool', ['train', 'test'])
def test_work_dir_that_cannot_be_created(tool, tiny_config, tmp_path, capsys):
    """--work-dir /proc/x used to pass the checks and fail inside MMEngine."""
    ckpt = tmp_path / 'x.pth'
    torch.save({}, ckpt)
    argv = [tiny_config] + ([str(ckpt)] if tool == 'test' else [])
    with pytest.raises(SystemExit) as exc:
        import_tool(tool).main(argv + ['--work-dir', '/proc/mmdyn-work'])
    assert exc.value.code == 2
    message = argparse_error(capsys)  # the reason: ENOENT for root, EACCES for others
    assert 'error: --work-dir /proc/mmdyn-work cannot be used: /proc does not accept new ' \
        'folders (' in message and message.endswith(')')


def test_get_flops_shape_zero(tmp_path, capsys):
    get_flops = import_tool('get_flops')
    cfg = tmp_path / 'c.py'
    cfg.write_text('x = 1\n')
    for shape in (['0'], ['224', '0'], ['-3']):
        with pytest.raises(SystemExit) as exc:
            get_flops.parse_args([str(cfg), '--shape', *shape])
        assert exc.value.code == 2
        assert argparse_error(capsys).endswith(
            f'error: --shape must be positive sizes in pixels (H W or one size), got '
            f'{" ".join(shape)}')


def test_analyze_logs_binary_file(tmp_path):
    analyze_logs = import_tool('analyze_logs')
    binary = tmp_path / 'epoch_1.pth'
    torch.save({'w': torch.zeros(3)}, binary)
    with pytest.raises(SystemExit) as exc:
        analyze_logs.main(['plot_curve', str(binary), '--out', str(tmp_path / 'c.png')])
    message = one_line(str(exc.value.code))
    assert message.startswith(f'error: {binary}: not a text log (')
    assert message.endswith("expected MMEngine's scalars.json, one JSON object per line")
    utf16 = tmp_path / 'utf16.json'
    utf16.write_text('{"loss": 1}\n', encoding='utf-16')
    with pytest.raises(SystemExit, match='not a text log'):
        analyze_logs.main(['cal_train_time', str(utf16)])


def test_resume_from_another_architecture(tiny_config, tmp_path):
    """A checkpoint of another model (a static one) used to fail inside the
    optimizer step; now a one-line error before anything is loaded."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    import mmdyn.models  # noqa: F401
    cfg = Config.fromfile(tiny_config)
    cfg.model.backbone.conv_cfg = None       # the static twin of the config's model
    init_default_scope('mmpretrain')
    model = MODELS.build(cfg.model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model(torch.zeros(2, 3, 8, 8), mode='tensor').sum().backward()
    optimizer.step()
    ckpt = tmp_path / 'static_iter_2.pth'
    torch.save(dict(meta=dict(epoch=0, iter=2), state_dict=model.state_dict(),
                    optimizer=optimizer.state_dict(), message_hub={}), ckpt)
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, 'tools/train.py', tiny_config, '--work-dir',
                           str(tmp_path / 'w'), '--resume', str(ckpt)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert 'Traceback' not in proc.stderr, proc.stderr[-4000:]
    message = one_line([line for line in proc.stderr.splitlines()
                        if line.startswith('error:')][0])
    assert message.startswith(f'error: --resume checkpoint {ckpt} does not match the model: ')
    assert 'key(s) with another shape (backbone.' in message
    assert message.endswith("resume needs a checkpoint of this config's model")
