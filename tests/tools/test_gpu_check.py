"""tools/gpu_check.py (library: mmdyn.utils.gpu_check) on the CPU with small sizes:
every section runs and reports (Mask R-CNN and torchrun in a slow test), the comparison
catches a real difference, CUDA is refused clearly where there is none, and without
OpenMMLab the layer sections still run while the Mask R-CNN / torchrun sections are
skipped with the reason."""
import json
import math
import os
import os.path as osp
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn as nn

from mmdyn.utils import gpu_check
from mmdyn.utils.gpu_check import (DeviceUnavailable, compare_layer, relative_error,
                                   resolve_device)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools', 'gpu_check.py')


def _env():
    return dict(os.environ, OMP_NUM_THREADS='1',
                PYTHONPATH=os.pathsep.join([REPO, os.environ.get('PYTHONPATH', '')]))


def _tool(*args, timeout=600):
    return subprocess.run([sys.executable, TOOL, *map(str, args)], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=timeout)


def test_cpu_run_reports_every_section(tmp_path):
    proc = _tool('--device', 'cpu', '--threads', '1', '--out', tmp_path, '--sections', 'env',
                 'layers', 'strategies', 'resnet50', 'pytest')
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / 'gpu_check.json').read_text())
    assert (tmp_path / 'gpu_check.md').read_text() in proc.stdout
    assert result['scale'] == 'small' and result['failed'] == []
    assert result['env']['device'] == 'cpu'
    # layers: every module, three precisions, errors within the stated tolerances
    rows = result['layers']['rows']
    names = {r['layer'] for r in rows}
    assert {'A2D2C', 'A2D2CPlus', 'ODConv', 'DyConv', 'CondConv', 'DCD', 'DMC',
            'AdaptiveEnhancement', 'MSFF', 'A2D2CPlus[maps]', 'ODConv[bmm]'} <= names
    assert len(rows) == 3 * len(names)
    for r in rows:
        assert r['status'] in ('ok', 'skipped'), r
        if r['status'] == 'ok':
            assert r['out_err'] <= r['tolerance']['out']
            if r['precision'] == 'float32':  # the same CPU kernels on both sides
                assert r['out_err'] == 0 and r['grad_param_err'] == 0
            else:  # autocast really ran in 16 bits
                assert r['out_err'] > 0
    # strategies: 2 shapes x 2 batches x fwd/fwd+bwd, every strategy timed, auto = the rule
    strat = result['strategies']
    assert len(strat['rows']) == 8 and strat['rule'] == result['env']['rule']
    for r in strat['rows']:
        assert set(r['ms']) == {'grouped', 'loop', 'bmm', 'maps'}
        assert all(t > 0 for t in r['ms'].values())
        assert r['auto'] == r['rule'] and r['fastest'] == min(r['ms'], key=r['ms'].get)
        assert r['auto_over_fastest'] >= 1
    # AMP training step of the three networks
    models = [r['model'] for r in result['resnet50']['rows']]
    assert models == ['ResNet-18 static', 'ResNet-18 A2D2CPlus', 'ResNet-18 ODConv']
    for r in result['resnet50']['rows']:
        assert r['finite'] and r['img_per_s'] > 0 and r['amp_dtype'] == 'bfloat16'
        assert r['peak_mb'] is None  # measured on CUDA only
    assert result['resnet50']['rows'][1]['params_m'] > 3 * result['resnet50']['rows'][0][
        'params_m']
    assert result['pytest']['status'] == 'skipped'
    assert 'CPU layer suite' in result['pytest']['reason']


@pytest.mark.slow
def test_cpu_maskrcnn_and_torchrun(tmp_path):
    """The OpenMMLab sections (mmcv's CPU ops here; gloo instead of NCCL)."""
    pytest.importorskip('mmdet')
    proc = _tool('--device', 'cpu', '--threads', '1', '--out', tmp_path, '--sections',
                 'maskrcnn', 'torchrun')
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / 'gpu_check.json').read_text())
    det = result['maskrcnn']
    assert det['status'] == 'ok', det
    assert all(math.isfinite(v) for v in det['losses'].values()) and 'loss' in det['losses']
    assert det['images'] == {'train': 2, 'test': 2} and det['has_masks']
    assert det['model_device'] == ['cpu']
    run = result['torchrun']
    assert run['returncode'] == 0 and run['backend'] == 'gloo' and run['distributed']
    assert run['checkpoint'].endswith(f'iter_{run["iterations"]}.pth')


def test_cuda_is_refused_clearly_without_a_gpu(tmp_path):
    if torch.cuda.is_available():
        pytest.skip('this machine has CUDA')
    proc = _tool('--device', 'cuda', '--out', tmp_path)
    assert proc.returncode == 2
    assert '--device cuda: CUDA is not available' in proc.stderr
    assert 'use --device cpu' in proc.stderr
    assert not (tmp_path / 'gpu_check.json').exists()


def test_module_entry_point_for_make_gpu_check():
    """``make gpu-check`` runs ``python -m mmdyn.utils.gpu_check`` from the repository
    root (no install needed there); the same options as tools/gpu_check.py."""
    proc = subprocess.run([sys.executable, '-m', 'mmdyn.utils.gpu_check', '--help'], cwd=REPO,
                          env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith('usage: ') and '--sections' in proc.stdout
    assert proc.stdout == _tool('--help').stdout


@pytest.mark.parametrize('name,message', [
    ('tpu', "not a device name"), ('mps', 'only cpu and cuda are checked')])
def test_resolve_device_errors(name, message):
    with pytest.raises(DeviceUnavailable, match=message):
        resolve_device(name)


def test_runs_with_torch_alone(tmp_path):
    """As on a GPU machine without mmcv: layers are checked, OpenMMLab sections skipped."""
    code = textwrap.dedent('''
        import importlib.abc, sys
        class Blocker(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in ('mmcv', 'mmdet', 'mmengine', 'mmpretrain'):
                    raise ImportError(name + ' is blocked in this test')
        sys.meta_path.insert(0, Blocker())
        from mmdyn.utils.gpu_check import main
        sys.exit(main(sys.argv[1:]))
    ''')
    proc = subprocess.run([sys.executable, '-c', code, '--device', 'cpu', '--out', str(tmp_path),
                           '--sections', 'env', 'strategies', 'maskrcnn', 'torchrun'],
                          cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / 'gpu_check.json').read_text())
    assert result['env']['mmcv']['installed'] is False
    assert result['strategies']['status'] == 'ok'
    for name in ('maskrcnn', 'torchrun'):
        assert result[name]['status'] == 'skipped'
        assert result[name]['reason'].startswith('needs mmengine')


class _DriftsAfterTwoCalls(nn.Module):
    """A conv whose output changes from its third call on (across copies): the CPU
    reference calls it twice, the 'device' copy after that."""
    calls = 0

    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        type(self).calls += 1
        return self.conv(x) * (1.001 if type(self).calls > 2 else 1.0)


def test_compare_layer_catches_a_difference():
    _DriftsAfterTwoCalls.calls = 0
    rows = compare_layer('drift', _DriftsAfterTwoCalls, torch.device('cpu'), 2, 4, 6,
                         precisions=('float32', ))
    assert rows[0]['status'] == 'fail'
    assert rows[0]['out_err'] == pytest.approx(1e-3, rel=1e-2)


def test_relative_error():
    ref = torch.tensor([1.0, -2.0])
    assert relative_error(ref, ref) == 0
    assert relative_error(torch.tensor([1.0, -2.2]), ref) == pytest.approx(0.1)
    assert relative_error(torch.tensor([1.0, float('nan')]), ref) == math.inf
    assert relative_error(None, None) == 0 and relative_error(None, ref) == math.inf


def test_dynamic_resnet_replaces_block_convs_only():
    pytest.importorskip('torchvision')
    model = gpu_check.dynamic_resnet(18, 'A2D2CPlus')
    kinds = {name: type(m).__name__ for name, m in model.named_modules()
             if isinstance(m, nn.Conv2d) or 'Conv2d' in type(m).__name__}
    assert kinds['conv1'] == 'Conv2d' and kinds['layer2.0.downsample.0'] == 'Conv2d'
    assert kinds['layer1.0.conv1'] == 'A2D2CPlusConv2d'
    assert kinds['layer4.1.conv2'] == 'A2D2CPlusConv2d'
