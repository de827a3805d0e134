"""tools/dist_train.sh, dist_test.sh, slurm_train.sh: syntax, usage messages, and
dist_test.sh running two CPU processes over gloo."""
import os
import os.path as osp
import subprocess

import pytest
import torch

from _tool_helpers import REPO, free_port, make_images, tool_env, write_config

SCRIPTS = ('dist_train.sh', 'dist_test.sh', 'dist_launch.sh', 'slurm_train.sh')


@pytest.mark.parametrize('name', SCRIPTS)
def test_script_parses_and_is_executable(name):
    path = osp.join(REPO, 'tools', name)
    assert os.access(path, os.X_OK), f'{name} is not executable'
    proc = subprocess.run(['bash', '-n', path], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize('name, args', [('dist_train.sh', ['cfg.py']),
                                        ('dist_test.sh', ['cfg.py', 'ckpt.pth']),
                                        ('dist_launch.sh', ['train.py']),
                                        ('slurm_train.sh', ['part', 'job', 'cfg.py'])])
def test_usage_without_enough_arguments(name, args):
    for argv in ([], args):
        proc = subprocess.run(['bash', osp.join(REPO, 'tools', name), *argv],
                              capture_output=True, text=True, cwd=REPO, timeout=30)
        assert proc.returncode == 2
        assert 'usage: ' in proc.stderr and name in proc.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason='tests the CPU/gloo path')
def test_dist_test_two_cpu_processes(tmp_path):
    """Evaluate a freshly initialised tiny classifier with 2 gloo processes."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    import mmdyn.models  # noqa: F401
    make_images(str(tmp_path / 'data'))
    config = write_config(tmp_path / 'tiny_cls.py', tmp_path / 'data')
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(config).model)
    ckpt = tmp_path / 'init.pth'
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    env = tool_env()
    env['PORT'] = str(free_port())
    proc = subprocess.run(['bash', 'tools/dist_test.sh', config, str(ckpt), '2',
                           '--work-dir', str(tmp_path / 'work')],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    lines = [x for x in proc.stdout.splitlines() if x.startswith('mmdyn test metrics:')]
    assert len(lines) == 1  # printed by rank 0 only
    out = proc.stdout + proc.stderr
    assert 'Distributed training: True' in out and 'GPU number: 2' in out, out[-3000:]
    assert "'accuracy/top1'" in lines[0]
