"""Files written through a temporary file and a rename (the static -> dynamic
converter, the ONNX export) get the mode every other new file gets: 0o666 less
the umask, not ``mkstemp``'s 0o600 (issue 17, section 1)."""
import os
import stat

import pytest
import torch

from _tools import import_tool
from mmdyn.utils.output_paths import replace_file, temp_file_beside, umask_mode


@pytest.fixture
def umask():
    """Set the process umask for one test (``umask(value)``), restored after."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize('mask', [0o022, 0o002, 0o077])
def test_umask_mode_reads_the_umask_without_changing_it(umask, mask):
    umask(mask)
    assert umask_mode() == 0o666 & ~mask
    assert umask_mode(0o777) == 0o777 & ~mask
    assert os.umask(mask) == mask  # still set


def test_replace_file_follows_the_umask_or_keeps_the_existing_mode(umask, tmp_path):
    umask(0o022)
    out = tmp_path / 'sub' / 'x.bin'
    tmp = temp_file_beside(str(out), suffix='.partial')
    assert os.path.dirname(tmp) == str(out.parent) and _mode(tmp) == 0o600
    with open(tmp, 'wb') as f:
        f.write(b'1')
    replace_file(tmp, str(out))
    assert out.read_bytes() == b'1' and _mode(out) == 0o644 and not os.path.exists(tmp)
    os.chmod(out, 0o640)  # replacing an existing file keeps its mode, as open('w') does
    tmp = temp_file_beside(str(out))
    replace_file(tmp, str(out))
    assert _mode(out) == 0o640 and out.read_bytes() == b''


@pytest.mark.parametrize('mask', [0o022, 0o077])
def test_converter_output_follows_the_umask(umask, tmp_path, mask):
    umask(mask)
    tool = import_tool('convert_static_to_dynamic')
    dst = tmp_path / 'out.pth'
    tool.save_atomically(dict(state_dict={'w': torch.ones(2)}), str(dst))
    assert _mode(dst) == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir()] == ['out.pth']  # no temporary left


def test_onnx_export_follows_the_umask(umask, tmp_path):
    pytest.importorskip('onnx')
    from mmdyn.deploy.onnx import export_onnx
    umask(0o022)
    out = tmp_path / 'conv.onnx'
    export_onnx(torch.nn.Conv2d(3, 2, 3).eval(), str(out), (3, 8, 8), ['out'])
    assert _mode(out) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ['conv.onnx']
