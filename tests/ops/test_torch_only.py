"""mmdyn and mmdyn.ops import and run with torch alone: no OpenMMLab package is touched."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CODE = textwrap.dedent('''
    import importlib.abc
    import sys

    BLOCKED = ('mmcv', 'mmdet', 'mmengine', 'mmpretrain')


    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in BLOCKED:
                raise ImportError(f'{name} is blocked in this test')
            return None


    sys.meta_path.insert(0, Blocker())
    for name in BLOCKED:
        sys.modules.pop(name, None)
        try:
            __import__(name)
        except ImportError:
            pass
        else:
            raise SystemExit(f'{name} is still importable')

    import torch
    torch.set_num_threads(1)
    import mmdyn
    import mmdyn.ops
    from mmdyn.ops import LAYERS, MODULES

    assert mmdyn.__file__.startswith(sys.argv[1]), mmdyn.__file__
    x = torch.randn(2, 4, 6, 6)
    for alias, cls in LAYERS.items():
        layer = cls(4, 6, 3, padding=1)
        y = layer(x)
        assert y.shape == (2, 6, 6, 6), (alias, y.shape)
        y.sum().backward()
        assert sum(layer.madds((6, 6), 2).values()) > 0, alias
    for alias, cls in MODULES.items():
        # DMC is a conv; AdaptiveEnhancement / MSFF are built like mmcv plugins
        layer = cls(4, 6, 3) if alias == 'DMC' else cls(in_channels=4)
        y = layer(x)
        expected = (2, 6, 6, 6) if alias == 'DMC' else (2, 4, 6, 6)
        assert y.shape == expected, (alias, y.shape)
        y.sum().backward()
    leaked = sorted(m for m in sys.modules if m.split('.')[0] in BLOCKED)
    assert not leaked, leaked
    print('TORCH-ONLY-OK', len(LAYERS), len(MODULES))
''')


def test_mmdyn_ops_needs_only_torch():
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [str(ROOT)] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p])
    env['OMP_NUM_THREADS'] = '1'
    proc = subprocess.run([sys.executable, '-c', CODE, str(ROOT)], cwd=str(ROOT), env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'TORCH-ONLY-OK 7 3' in proc.stdout
