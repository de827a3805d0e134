"""Refusals end a tool with one line ``error: <message>`` and no traceback (the
traceback only with ``--debug``): every tool's ``__main__`` is
``mmdyn.engine.cli.run(main)``. The cases are the checkpoint refusals that used
to print a full traceback before their clear last line (``--resume`` /
``load_from`` of a missing, corrupt, truncated, empty or non-dict file)."""
import os.path as osp
import pickle
import subprocess
import sys
import warnings

import pytest
import torch

from _tool_helpers import REPO, make_images, tool_env, write_config
from _tools import import_tool, tool_path
from mmdyn.engine import cli


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """The tiny config, a checkpoint of its model and broken checkpoints."""
    from mmengine.runner import save_checkpoint

    from mmdyn.apis import load_model
    tmp = tmp_path_factory.mktemp('one_line')
    make_images(str(tmp / 'data'))
    config = write_config(tmp / 'tiny.py', tmp / 'data')
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        state = load_model(config, None).model.state_dict()
    save_checkpoint({'state_dict': state, 'meta': {}}, str(tmp / 'good.pth'))
    data = (tmp / 'good.pth').read_bytes()
    (tmp / 'truncated.pth').write_bytes(data[:len(data) // 2])
    (tmp / 'empty.pth').write_bytes(b'')
    (tmp / 'garbage.pth').write_bytes(b'not a checkpoint\n' * 8)
    torch.save([1, 2, 3], tmp / 'list.pth')
    torch.save(torch.zeros(3), tmp / 'tensor.pth')
    return dict(tmp=tmp, config=config, image=str(tmp / 'data' / 'a' / '0.png'))


@pytest.fixture(autouse=True)
def _log_to_this_tests_streams():
    """MMEngine's loggers outlive a test: their console handlers still hold an
    earlier test's captured (closed) stream, and writing to it prints a
    'Logging error' traceback that is no part of the tool's output."""
    import logging

    from mmengine.logging import MMLogger
    for logger in list(MMLogger._instance_dict.values()):
        for handler in logger.handlers:
            if type(handler) is logging.StreamHandler:
                handler.stream = sys.stdout  # (setStream would flush the closed one)
    yield


def _run(tool, argv, capfd):
    """``cli.run(main, argv)`` in process: (exit status, stderr); a
    ``sys.exit(message)`` of the tool counts as what the interpreter does with
    it (the message on stderr, status 1)."""
    capfd.readouterr()
    with pytest.raises(SystemExit) as exc:
        cli.run(import_tool(tool).main, argv)
    code, err = exc.value.code, capfd.readouterr().err
    if isinstance(code, str):
        code, err = 1, err + code + '\n'
    return code, err


def _argv(files, case):
    tool, extra = case
    tmp, config = files['tmp'], files['config']
    ckpt = str(tmp / f'{extra[1]}.pth') if extra[0] != 'missing' else str(tmp / 'missing.pth')
    if tool == 'train':
        option = (['--resume', ckpt] if extra[0] == 'resume'
                  else ['--cfg-options', f'load_from={ckpt}'])
        return [config, '--work-dir', str(tmp / f'w_{extra[0]}_{extra[1]}')] + option
    if tool == 'test':
        return [config, ckpt, '--work-dir', str(tmp / f'wt_{extra[1]}')]
    if tool == 'visualize_attention':
        return [config, ckpt, files['image'], '--out', str(tmp / 'att.png'), '--shape', '32']
    raise AssertionError(tool)


CASES = {
    'train-resume-garbage': ('train', ('resume', 'garbage')),
    'train-resume-truncated': ('train', ('resume', 'truncated')),
    'train-resume-empty': ('train', ('resume', 'empty')),
    'train-resume-list': ('train', ('resume', 'list')),
    'train-resume-tensor': ('train', ('resume', 'tensor')),
    'train-load_from-missing': ('train', ('missing', 'missing')),
    'train-load_from-garbage': ('train', ('load_from', 'garbage')),
    'train-load_from-list': ('train', ('load_from', 'list')),
    'test-truncated': ('test', ('ckpt', 'truncated')),
    'test-empty': ('test', ('ckpt', 'empty')),
    'visualize_attention-garbage': ('visualize_attention', ('ckpt', 'garbage')),
}


@pytest.mark.parametrize('case', list(CASES))
def test_checkpoint_refusals_are_one_line(files, case, capfd):
    code, err = _run(CASES[case][0], _argv(files, CASES[case]), capfd)
    assert code == 1, err[-3000:]
    assert 'Traceback' not in err, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith('error: ') and 'checkpoint' in last, last
    name = CASES[case][1][1]
    assert f'{name}.pth' in last, last  # names the file


@pytest.mark.parametrize('case', ['train-resume-garbage', 'train-load_from-missing',
                                  'visualize_attention-garbage'])
def test_debug_shows_the_traceback(files, case):
    argv = _argv(files, CASES[case]) + ['--debug']
    with pytest.raises((RuntimeError, FileNotFoundError, ValueError,
                        pickle.UnpicklingError)) as exc:
        cli.run(import_tool(CASES[case][0]).main, argv)
    assert f'{CASES[case][1][1]}.pth' in str(exc.value)


def test_the_script_itself_prints_one_line(files):
    """The real ``python tools/train.py`` (its ``__main__`` block): no traceback
    anywhere on stderr (MMEngine's logger included), the one line last."""
    argv = [sys.executable, tool_path('train')] + _argv(files, CASES['train-resume-garbage'])
    proc = subprocess.run(argv, cwd=REPO, env=tool_env(), capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1].startswith(
        f"error: checkpoint {osp.join(files['tmp'], 'garbage.pth')} is corrupt")
