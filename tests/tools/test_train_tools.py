"""End-to-end tests of tools/train.py, tools/test.py and tools/dist_train.sh on a
tiny MMPretrain classifier with A2D2C+ convolutions (CPU, generated images)."""
import pickle
import subprocess
import sys

import pytest
import torch

import mmdyn.models  # noqa: F401  (safe checkpoint loading for torch.load below)
from _tool_helpers import REPO, free_port, make_images, run, tool_env, write_config


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """Data, config, and one uninterrupted 4-iteration single-process run."""
    tmp = tmp_path_factory.mktemp('tools')
    data = tmp / 'data'
    make_images(str(data))
    config = write_config(tmp / 'tiny_cls.py', data)
    work = tmp / 'full'
    proc = run([sys.executable, 'tools/train.py', str(config), '--work-dir', str(work)])
    return dict(tmp=tmp, config=str(config), work=work, log=proc.stdout + proc.stderr)


def params_of(ckpt):
    return torch.load(ckpt, map_location='cpu', weights_only=True)


def test_train_single_process_writes_checkpoints(setup):
    work = setup['work']
    assert (work / 'iter_2.pth').is_file() and (work / 'iter_4.pth').is_file()
    ckpt = params_of(work / 'iter_4.pth')
    assert ckpt['meta']['iter'] == 4
    # The mmdyn layer was really used, and the temperature was annealed and logged.
    banks = [k for k, v in ckpt['state_dict'].items() if v.dim() == 5]
    assert 'backbone.conv1.weight' in banks  # (K=2, C_out, C_in, 3, 3) kernel bank
    assert ckpt['state_dict']['backbone.conv1.weight'].shape[0] == 2
    log = setup['log']
    for n in range(4):  # T(n) = 1 + 29 * (4 - n) / 4 logged at iterations 1..4
        assert f'temperature: {1 + 29 * (4 - n) / 4:.4f}' in log
    dump = torch.load(work / 'rank0_params.pth', weights_only=True)
    # The final validation (at iteration 4 = N) ran with the end temperature.
    assert dump['temperatures'] and set(dump['temperatures']) == {1.0}
    assert dump['wrapper'] != 'CPUDistributedDataParallel' and dump['world_size'] == 1


def test_resume_equals_uninterrupted(setup):
    work = setup['tmp'] / 'resumed'
    proc = run([sys.executable, 'tools/train.py', setup['config'], '--work-dir', str(work),
                '--resume', str(setup['work'] / 'iter_2.pth')])
    assert 'resumed epoch: 0, iter: 2' in proc.stdout + proc.stderr
    assert not (work / 'iter_2.pth').exists() and (work / 'iter_4.pth').is_file()
    full = params_of(setup['work'] / 'iter_4.pth')
    resumed = params_of(work / 'iter_4.pth')
    assert resumed['meta']['iter'] == full['meta']['iter'] == 4
    assert full['state_dict'].keys() == resumed['state_dict'].keys()
    for key, value in full['state_dict'].items():
        torch.testing.assert_close(resumed['state_dict'][key], value, rtol=1e-5, atol=1e-6,
                                   msg=f'{key} differs after resume')
    # ... and the training actually changed the weights since iteration 2.
    mid = params_of(setup['work'] / 'iter_2.pth')['state_dict']
    assert any(not torch.equal(mid[k], v) for k, v in full['state_dict'].items())
    # The last logged loss matches too.
    # (the log processor counts iterations per epoch: iteration 4 is "[1][4/8]").
    def last_loss(run_dir):
        lines = [line for line in open(next(run_dir.glob('*/*.log')))
                 if '(train)' in line and ' loss: ' in line]
        assert lines and '[4/8]' in lines[-1], lines
        return lines[-1].split(' loss: ')[1].split()[0]

    assert last_loss(setup['work']) == last_loss(work)


def test_resume_auto_without_value(setup):
    """``--resume`` with no value resumes the latest checkpoint of the work dir:
    with everything already done, no further iteration runs."""
    proc = run([sys.executable, 'tools/train.py', setup['config'], '--work-dir',
                str(setup['work']), '--resume', '--cfg-options', 'train_cfg.max_iters=4'])
    out = proc.stdout + proc.stderr
    assert 'resumed epoch: 0, iter: 4' in out
    assert ' loss: ' not in out.split('resumed epoch')[1]


def test_test_tool_reports_accuracy_and_dumps(setup):
    out_file = setup['tmp'] / 'preds.pkl'
    proc = run([sys.executable, 'tools/test.py', setup['config'],
                str(setup['work'] / 'iter_4.pth'), '--work-dir', str(setup['tmp'] / 'test'),
                '--out', str(out_file)])
    line = [x for x in proc.stdout.splitlines() if x.startswith('mmdyn test metrics:')]
    assert line and "'accuracy/top1'" in line[0]
    acc = float(line[0].split("'accuracy/top1': ")[1].split('}')[0].split(',')[0])
    assert 0.0 <= acc <= 100.0
    with open(out_file, 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == 16 and 'pred_score' in preds[0]


def test_missing_config_and_checkpoint_errors(setup, tmp_path):
    missing = str(tmp_path / 'nope.py')
    for cmd in ([sys.executable, 'tools/train.py', missing],
                [sys.executable, 'tools/test.py', missing, 'x.pth']):
        proc = run(cmd, check=False)
        assert proc.returncode != 0
        assert f'config file not found: {missing}' in proc.stderr
    ckpt = str(tmp_path / 'missing.pth')
    proc = run([sys.executable, 'tools/test.py', setup['config'], ckpt], check=False)
    assert proc.returncode != 0 and f'checkpoint file not found: {ckpt}' in proc.stderr
    proc = run([sys.executable, 'tools/train.py', setup['config'], '--resume', ckpt],
               check=False)
    assert proc.returncode != 0 and f'--resume checkpoint not found: {ckpt}' in proc.stderr


@pytest.mark.slow  # the default suite trains 1 node x 2 processes in tests/tools/test_multinode.py
@pytest.mark.skipif(torch.cuda.is_available(), reason='tests the CPU/gloo path')
def test_dist_train_two_cpu_processes(setup):
    work = setup['tmp'] / 'dist'
    env = tool_env()
    env['PORT'] = str(free_port())
    proc = subprocess.run(['bash', 'tools/dist_train.sh', setup['config'], '2', '--work-dir',
                           str(work)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert (work / 'iter_4.pth').is_file()
    assert params_of(work / 'iter_4.pth')['meta']['iter'] == 4
    r0 = torch.load(work / 'rank0_params.pth', weights_only=True)
    r1 = torch.load(work / 'rank1_params.pth', weights_only=True)
    assert r0['world_size'] == r1['world_size'] == 2
    assert r0['wrapper'] == r1['wrapper'] == 'CPUDistributedDataParallel'
    assert r0['iter'] == r1['iter'] == 4
    assert r0['params'].keys() == r1['params'].keys()
    for key, value in r0['params'].items():
        assert torch.equal(value, r1['params'][key]), f'{key} differs between ranks'
    # The checkpoint holds rank 0's weights; training moved them away from the init.
    final = params_of(work / 'iter_4.pth')['state_dict']
    for key, value in r0['params'].items():
        torch.testing.assert_close(final[key], value)
    assert r0['temperatures'] == r1['temperatures']
