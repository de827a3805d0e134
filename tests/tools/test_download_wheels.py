"""tools/download_wheels.sh, offline: it fills a folder from a local package source
made here (two tiny wheels, one depending on the other, and a source archive built
by an in-tree backend without build requirements), and that folder then installs
with ``pip --no-index --find-links`` -- the flags tools/setup_env.sh passes to every
pip call under MMDYN_WHEELS (tests/tools/test_setup_env.py). What this proves: the
script's pip invocations (dependencies resolved, source archives kept as sources,
cross-Python wheel selection) and the offline install from its folder; it does not
download the real stack (GBs) in the test."""
import os
import os.path as osp
import subprocess
import sys
import tarfile

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(REPO, 'tools', 'download_wheels.sh')

BACKEND = '''\
import base64, hashlib, os, zipfile
NAME, VERSION, DEPS = @NAME@, '1.0', @DEPS@
DIST = NAME.replace('-', '_')
INFO = '%s-%s.dist-info' % (DIST, VERSION)


def _metadata():
    return ('Metadata-Version: 2.1\\nName: %s\\nVersion: %s\\n' % (NAME, VERSION)
            + ''.join('Requires-Dist: %s\\n' % d for d in DEPS))


def get_requires_for_build_wheel(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    os.makedirs(os.path.join(metadata_directory, INFO))
    with open(os.path.join(metadata_directory, INFO, 'METADATA'), 'w') as f:
        f.write(_metadata())
    return INFO


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name = '%s-%s-py3-none-any.whl' % (DIST, VERSION)
    files = {DIST + '.py': 'VALUE = %r\\n' % NAME, INFO + '/METADATA': _metadata(),
             INFO + '/WHEEL': 'Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\n'
                              'Tag: py3-none-any\\n'}
    record = []
    with zipfile.ZipFile(os.path.join(wheel_directory, name), 'w') as zf:
        for path, text in files.items():
            data = text.encode()
            zf.writestr(path, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=')
            record.append('%s,sha256=%s,%d' % (path, digest.decode(), len(data)))
        record.append(INFO + '/RECORD,,')
        zf.writestr(INFO + '/RECORD', '\\n'.join(record) + '\\n')
    return name
'''
PYPROJECT = ('[build-system]\nrequires = []\nbuild-backend = "tinybackend"\n'
             'backend-path = ["."]\n')


def _project(root, name, deps=()):
    root.mkdir(parents=True)
    (root / 'tinybackend.py').write_text(
        BACKEND.replace('@NAME@', repr(name)).replace('@DEPS@', repr(list(deps))))
    (root / 'pyproject.toml').write_text(PYPROJECT)
    (root / 'PKG-INFO').write_text(f'Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n')
    return root


def _wheel(project, out):
    code = ('import sys; sys.path.insert(0, sys.argv[1]); import tinybackend; '
            'print(tinybackend.build_wheel(sys.argv[2]))')
    subprocess.run([sys.executable, '-c', code, str(project), str(out)], check=True)


@pytest.fixture
def source(tmp_path):
    """A local package source: dummy-a (needs dummy-b) and dummy-b as wheels,
    dummy-src as a source archive only."""
    src = tmp_path / 'source'
    src.mkdir()
    _wheel(_project(tmp_path / 'proj' / 'dummy-a', 'dummy-a', ['dummy-b==1.0']), src)
    _wheel(_project(tmp_path / 'proj' / 'dummy-b', 'dummy-b'), src)
    sdist_root = _project(tmp_path / 'proj' / 'dummy_src-1.0', 'dummy-src')
    with tarfile.open(src / 'dummy_src-1.0.tar.gz', 'w:gz') as tar:
        tar.add(sdist_root, arcname='dummy_src-1.0')
    return src


def _offline_env(source):
    """pip reads only the given local folder: no config files, no index."""
    return dict(os.environ, PYTHON=sys.executable, PIP_CONFIG_FILE=os.devnull,
                PIP_NO_INDEX='1', PIP_FIND_LINKS=str(source),
                PIP_DISABLE_PIP_VERSION_CHECK='1')


def _run(args, env, **kw):
    return subprocess.run(['bash', SCRIPT, *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=300, **kw)


def test_fills_a_folder_that_installs_offline(tmp_path, source):
    req = tmp_path / 'req.txt'
    req.write_text('# a comment\nstack dummy-a==1.0\n\nsdist dummy-src==1.0\n')
    dest = tmp_path / 'wheels'
    proc = _run([dest, '--requirements', req], _offline_env(source))
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(dest)) == ['dummy_a-1.0-py3-none-any.whl',
                                        'dummy_b-1.0-py3-none-any.whl',  # the dependency
                                        'dummy_src-1.0.tar.gz']          # kept as source
    assert f'MMDYN_WHEELS={dest}' in proc.stderr
    # the folder alone is enough: the same flags setup_env.sh gives pip under MMDYN_WHEELS
    target = tmp_path / 'site'
    env = dict(os.environ, PIP_CONFIG_FILE=os.devnull)
    env.pop('PIP_FIND_LINKS', None)
    subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--no-index', '--find-links',
                    str(dest), '--target', str(target), 'dummy-a==1.0', 'dummy-src==1.0'],
                   env=env, check=True, capture_output=True, text=True)
    assert {'dummy_a.py', 'dummy_b.py', 'dummy_src.py'} <= set(os.listdir(target))


def test_wheels_for_another_python(tmp_path, source):
    req = tmp_path / 'req.txt'
    req.write_text('stack dummy-a==1.0\n')
    dest = tmp_path / 'wheels'
    other = '3.12' if sys.version_info[:2] != (3, 12) else '3.11'
    proc = _run([dest, '--requirements', req, '--python-version', other],
                _offline_env(source))
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(dest)) == ['dummy_a-1.0-py3-none-any.whl',
                                        'dummy_b-1.0-py3-none-any.whl']


def test_default_list_is_setup_env_list():
    """Without --requirements the list is setup_env.sh's own (one source of truth)."""
    pinned = _run(['--list'], dict(os.environ), check=True).stdout.splitlines()
    expected = subprocess.run(['bash', osp.join(REPO, 'tools', 'setup_env.sh'),
                               '--print-requirements'], capture_output=True, text=True,
                              check=True).stdout.splitlines()
    assert pinned == list(dict.fromkeys(expected))
    assert any(line.startswith('torch torch==') for line in pinned)
    assert any(line.startswith('sdist mmcv==') for line in pinned)
    system = _run(['--list', '--torch', 'system'], dict(os.environ), check=True).stdout
    assert 'torch==' not in system and 'torchvision==' not in system
    assert 'sdist mmcv==' in system


@pytest.mark.parametrize('args,message', [
    ([], 'usage: tools/download_wheels.sh DIR'),
    (['d', '--torch', 'conda'], "--torch must be pinned or system, got 'conda'"),
    (['d', '--python-version', '312'], "--python-version must look like 3.12, got '312'"),
    (['d', '--requirements', '/nonexistent.txt'], '--requirements file not found'),
    (['d', '--fast'], 'unknown option --fast'),
    (['d', 'e'], "one destination folder expected, got 'd' and 'e'"),
    (['d', '--torch'], '--torch needs a value'),
], ids=['no-dir', 'torch', 'python-version', 'requirements', 'option', 'two-dirs', 'no-value'])
def test_bad_arguments(tmp_path, args, message):
    proc = _run(args, dict(os.environ), cwd=tmp_path)
    assert proc.returncode == 1
    assert message in proc.stderr


def test_bad_requirement_line(tmp_path, source):
    req = tmp_path / 'req.txt'
    req.write_text('stack dummy-a==1.0 extra\n')
    proc = _run([tmp_path / 'w', '--requirements', req], _offline_env(source))
    assert proc.returncode == 1 and 'bad requirement line' in proc.stderr
