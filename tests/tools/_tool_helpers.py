"""Shared helpers of the tools tests: generated images and the tiny config."""
import os
import os.path as osp
import socket
import subprocess
import sys

import numpy as np
from PIL import Image

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
HERE = osp.dirname(osp.abspath(__file__))
TEMPLATE = osp.join(REPO, 'tests', 'data', 'mmpretrain_tiny_cls.py.tmpl')


def make_images(root):
    """16 random 32x32 PNGs in two class folders; class b is brighter."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(('a', 'b')):
        os.makedirs(osp.join(root, name), exist_ok=True)
        for i in range(8):
            img = rng.integers(0, 128, (32, 32, 3), dtype=np.uint8) + 100 * c
            Image.fromarray(img.astype(np.uint8)).save(osp.join(root, name, f'{i}.png'))


def write_config(path, data_root):
    """Write the tiny MMPretrain config with ``data_root`` filled in; return its path."""
    with open(TEMPLATE) as f:
        text = f.read().replace('{data_root}', str(data_root))
    with open(path, 'w') as f:
        f.write(text)
    return str(path)


def tool_env():
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([REPO, HERE])
    env['PATH'] = osp.dirname(sys.executable) + os.pathsep + env.get('PATH', '')
    env.setdefault('OMP_NUM_THREADS', '1')
    for key in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT'):
        env.pop(key, None)
    return env


def run(cmd, timeout=240, check=True):
    proc = subprocess.run(cmd, cwd=REPO, env=tool_env(), capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f'{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n'
                             f'{proc.stderr[-5000:]}')
    return proc


def free_port():
    """A TCP port that is free right now (for torchrun's master)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]
