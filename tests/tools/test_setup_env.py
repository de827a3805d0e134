"""tools/setup_env.sh decisions, checked with its dry run (--dry-run prints the plan
and every command, and changes nothing) under fake ``nvidia-smi`` / ``nvcc``
executables, in a sandbox PATH that holds only the basic tools (so a real driver or
toolkit on the test machine does not leak in), with the venv and the wheel cache in
tmp_path. One slow test runs the set-up for real, offline, in bring-your-own-torch
mode on top of this test's own interpreter."""
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import zipfile

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SETUP = osp.join(REPO, 'tools', 'setup_env.sh')
TOOLS = ('bash', 'sh', 'cat', 'sha1sum', 'cut', 'tr', 'sed', 'grep', 'sort', 'paste', 'head',
         'readlink', 'dirname', 'uname', 'mktemp', 'nproc', 'awk', 'rm', 'mkdir', 'mv', 'tar',
         'find', 'wc', 'env', 'ln', 'cp', 'chmod')


def _pin(name):
    return re.search(rf'^{name}=(\S+)$', open(SETUP).read(), re.M).group(1)


TORCH_PIN, MMCV_PIN, PINNED_CUDA = _pin('TORCH_VERSION'), _pin('MMCV_VERSION'), _pin(
    'PINNED_TORCH_CUDA')
PY_TAG = 'cp%d%d' % sys.version_info[:2]


@pytest.fixture
def sandbox(tmp_path):
    """A PATH with only the basic tools, plus a folder ``fake`` for fake executables."""
    base = tmp_path / 'sandbox_bin'
    base.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        if found is None:
            pytest.skip(f'{tool} is not installed')
        (base / tool).symlink_to(found)
    fake = tmp_path / 'fake_bin'
    fake.mkdir()
    return tmp_path, fake, base


def _fake_nvidia_smi(folder, caps=('9.0', ), fail=False):
    script = folder / 'nvidia-smi'
    if fail:  # installed, but the driver is not loaded
        body = ('echo "NVIDIA-SMI has failed because it couldn\'t communicate with the NVIDIA '
                'driver."; exit 9')
    else:
        caps_text = ''.join(f'{cap}\\n' for cap in caps)  # printf escapes
        listing = ''.join(f'GPU {i}: NVIDIA Fake (UUID: GPU-{i})\\n' for i in range(len(caps)))
        body = ('case "$*" in\n'
                f"  *compute_cap*) printf '{caps_text}' ;;\n"
                f"  *-L*) printf '{listing}' ;;\n"
                '  *) echo "fake nvidia-smi" ;;\nesac')
    script.write_text('#!/bin/sh\n' + body + '\n')
    script.chmod(0o755)


def _fake_toolkit(root, version):
    """A CUDA 'toolkit' folder with bin/nvcc reporting ``version`` and the header."""
    (root / 'bin').mkdir(parents=True)
    (root / 'include').mkdir()
    (root / 'include' / 'cuda_runtime.h').write_text('')
    nvcc = root / 'bin' / 'nvcc'
    nvcc.write_text('#!/bin/sh\necho "nvcc: NVIDIA (R) Cuda compiler driver"\n'
                    f'echo "Cuda compilation tools, release {version}, V{version}.1"\n')
    nvcc.chmod(0o755)
    return root


def _run(sandbox, *args, path=(), dry_run=True, **env):
    tmp, fake, base = sandbox
    full = {'HOME': str(tmp / 'home'), 'PATH': os.pathsep.join([*map(str, path), str(fake),
                                                                   str(base)]),
            'MMDYN_VENV': str(tmp / 'venv'), 'MMDYN_CACHE': str(tmp / 'cache'),
            'PYTHON': sys.executable, 'CUDA_VISIBLE_DEVICES': '', 'TMPDIR': str(tmp)}
    full.update({k: str(v) for k, v in env.items()})
    cmd = ['bash', SETUP] + (['--dry-run'] if dry_run else []) + list(args)
    proc = subprocess.run(cmd, env=full, capture_output=True, text=True, timeout=600)
    plan = {}
    for line in proc.stdout.splitlines():
        match = re.match(r'^([a-z_]+):\s+(.*)$', line)
        if match:
            plan[match.group(1)] = match.group(2)
    proc.plan = plan
    proc.commands = [ln for ln in proc.stdout.splitlines() if ln.startswith('would run')]
    return proc


def _pip_lines(proc):
    return [c for c in proc.commands if re.search(r' -m pip .*\b(install|download)\b', c)]


# ------------------------------------------------------------------- CPU default
def test_cpu_default_without_gpu_changes_nothing(sandbox):
    tmp = sandbox[0]
    proc = _run(sandbox)
    assert proc.returncode == 0, proc.stderr
    assert proc.plan['mode'] == 'pinned'
    assert proc.plan['gpu'] == 'none'
    assert proc.plan['mmcv_ops'].startswith('cpu (no NVIDIA GPU found')
    # the key of the CPU wheel built before this change: the cached wheel stays valid
    assert proc.plan['cache_key'] == f'mmcv-{MMCV_PIN}-torch{TORCH_PIN}-cpu'
    assert 'cuda_arch_list' not in proc.plan and 'nvcc' not in proc.plan
    assert any(f'torch=={TORCH_PIN}' in c for c in _pip_lines(proc))
    assert any('FORCE_CUDA=0' in ln for ln in proc.stdout.splitlines())
    assert not (tmp / 'venv').exists() and not (tmp / 'cache').exists()


def test_the_real_default_plan_reuses_the_cached_cpu_key():
    """On this machine (no GPU, or CUDA hidden) the default plan names the CPU wheel."""
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='', MMDYN_SETUP_DRY_RUN='1')
    for key in ('MMDYN_TORCH', 'MMDYN_MMCV_CUDA', 'MMDYN_WHEELS', 'MMDYN_VENV'):
        env.pop(key, None)
    if shutil.which('nvidia-smi', path=env.get('PATH')):
        pytest.skip('this machine has nvidia-smi: the default there is the CUDA build')
    proc = subprocess.run(['bash', SETUP], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f'mmcv-{MMCV_PIN}-torch{TORCH_PIN}-cpu' in proc.stdout


# ------------------------------------------------------------------- GPU found
@pytest.mark.parametrize('caps,arch,key', [(('9.0', '9.0'), '9.0', 'arch90'),
                                           (('8.0', '9.0', '8.0'), '8.0;9.0', 'arch80-90')],
                         ids=['one-arch', 'two-archs'])
def test_gpu_found_builds_cuda_ops_for_its_arch_only(sandbox, caps, arch, key):
    tmp, fake, _ = sandbox
    _fake_nvidia_smi(fake, caps)
    toolkit = _fake_toolkit(tmp / 'cuda', PINNED_CUDA)
    proc = _run(sandbox, path=[toolkit / 'bin'])
    assert proc.returncode == 0, proc.stderr
    assert proc.plan['mmcv_ops'].startswith('cuda (NVIDIA GPU found by nvidia-smi')
    assert proc.plan['cuda_arch_list'].startswith(arch + ' (from the GPU(s)')
    assert proc.plan['nvcc'] == f'{toolkit}/bin/nvcc (CUDA {PINNED_CUDA}, from PATH)'
    assert proc.plan['cuda_home'] == str(toolkit)
    assert proc.plan['cache_key'] == f'mmcv-{MMCV_PIN}-torch{TORCH_PIN}-cuda{PINNED_CUDA}-{key}'
    assert (f"would export: FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST='{arch}' CUDA_HOME={toolkit}"
            in proc.stdout)


def test_cuda_home_wins_over_path(sandbox):
    tmp, fake, _ = sandbox
    _fake_nvidia_smi(fake)
    other = _fake_toolkit(tmp / 'cuda-other', '11.8')
    toolkit = _fake_toolkit(tmp / 'cuda', PINNED_CUDA)
    proc = _run(sandbox, path=[other / 'bin'], CUDA_HOME=toolkit)
    assert proc.returncode == 0, proc.stderr
    assert proc.plan['nvcc'].startswith(f'{toolkit}/bin/nvcc (CUDA {PINNED_CUDA}, from CUDA_HOME')


def test_no_nvcc_says_what_to_install_and_set(sandbox):
    _fake_nvidia_smi(sandbox[1])
    proc = _run(sandbox)
    assert proc.returncode == 1
    err = proc.stderr
    assert 'no nvcc was found' in err and 'CUDA_HOME' in err
    assert f'CUDA {PINNED_CUDA.split(".")[0]}.x toolkit' in err
    assert f'torch {TORCH_PIN} is built for CUDA {PINNED_CUDA}' in err
    assert 'MMDYN_MMCV_CUDA=0' in err


def test_cuda_home_without_nvcc_is_an_error(sandbox):
    _fake_nvidia_smi(sandbox[1])
    proc = _run(sandbox, CUDA_HOME=sandbox[0] / 'nowhere')
    assert proc.returncode == 1
    assert 'has no bin/nvcc' in proc.stderr


def test_nvcc_major_version_must_match_torch(sandbox):
    tmp, fake, _ = sandbox
    _fake_nvidia_smi(fake)
    toolkit = _fake_toolkit(tmp / 'cuda', '12.4')
    proc = _run(sandbox, path=[toolkit / 'bin'])
    assert proc.returncode == 1
    assert 'CUDA major versions disagree' in proc.stderr
    assert f'built for CUDA {PINNED_CUDA}' in proc.stderr and 'is CUDA 12.4' in proc.stderr


def test_nvidia_smi_without_driver_means_cpu(sandbox):
    _fake_nvidia_smi(sandbox[1], fail=True)
    proc = _run(sandbox)
    assert proc.returncode == 0, proc.stderr
    assert proc.plan['mmcv_ops'].startswith('cpu (no NVIDIA GPU found')
    assert 'couldn' in proc.plan['mmcv_ops']  # nvidia-smi's own message is passed on


def test_mmcv_cuda_0_forces_cpu_with_a_warning(sandbox):
    _fake_nvidia_smi(sandbox[1])
    proc = _run(sandbox, MMDYN_MMCV_CUDA='0')
    assert proc.returncode == 0, proc.stderr
    assert proc.plan['mmcv_ops'] == 'cpu (MMDYN_MMCV_CUDA=0)'
    assert 'WARNING: MMDYN_MMCV_CUDA=0 on a machine with a GPU' in proc.stderr


def test_mmcv_cuda_1_without_gpu_needs_an_arch(sandbox):
    toolkit = _fake_toolkit(sandbox[0] / 'cuda', PINNED_CUDA)
    proc = _run(sandbox, MMDYN_MMCV_CUDA='1', CUDA_HOME=toolkit)
    assert proc.returncode == 1
    assert 'set MMDYN_CUDA_ARCH' in proc.stderr
    proc = _run(sandbox, MMDYN_MMCV_CUDA='1', CUDA_HOME=toolkit, MMDYN_CUDA_ARCH='8.6 9.0+PTX')
    assert proc.returncode == 0, proc.stderr
    assert proc.plan['cuda_arch_list'] == '8.6;9.0+PTX (from MMDYN_CUDA_ARCH)'
    assert proc.plan['cache_key'].endswith('-arch86-90ptx')


@pytest.mark.parametrize('env,message', [
    (dict(MMDYN_CUDA_ARCH='sm_90'), "bad compute capability 'sm_90'"),
    (dict(MMDYN_MMCV_CUDA='yes'), "MMDYN_MMCV_CUDA must be auto, 1 or 0, got 'yes'"),
    (dict(MMDYN_TORCH='conda'), "MMDYN_TORCH must be 'pinned'"),
    (dict(MMDYN_WHEELS='/nonexistent/wheels'), 'MMDYN_WHEELS=/nonexistent/wheels is not a folder'),
], ids=['arch', 'cuda-switch', 'torch-mode', 'wheels-folder'])
def test_bad_switches_are_named(sandbox, env, message):
    tmp, fake, _ = sandbox
    _fake_nvidia_smi(fake)
    toolkit = _fake_toolkit(tmp / 'cuda', PINNED_CUDA)
    proc = _run(sandbox, CUDA_HOME=toolkit, **env)
    assert proc.returncode == 1
    assert message in proc.stderr


@pytest.mark.parametrize('case', ['python', 'venv-is-a-file', 'venv-under-a-file', 'jobs',
                                  'jobs-zero', 'cache-is-a-file'])
def test_impossible_settings_fail_the_dry_run_as_the_real_run(sandbox, case):
    """The dry run used to exit 0 and plan the impossible: the switches are checked
    up front, and the dry and the real run stop with the same message, having
    changed nothing (the real run is offline: an empty wheel folder, no index)."""
    tmp = sandbox[0]
    a_file = tmp / 'a_file'
    a_file.write_text('not a folder')
    env, message = {
        'python': (dict(PYTHON='/nonexistent/python3'),
                   'PYTHON=/nonexistent/python3 is not a Python interpreter that runs'),
        'venv-is-a-file': (dict(MMDYN_VENV=a_file),
                           f'MMDYN_VENV={a_file} cannot be created: it is a file, not a folder'),
        'venv-under-a-file': (dict(MMDYN_VENV=a_file / 'venv'),
                              f'MMDYN_VENV={a_file}/venv cannot be created: {a_file} is a '
                              'file, not a folder'),
        'jobs': (dict(MMDYN_MMCV_JOBS='abc'),
                 "MMDYN_MMCV_JOBS must be a whole number of parallel compile jobs (1 or more), "
                 "got 'abc'"),
        'jobs-zero': (dict(MMDYN_MMCV_JOBS='0'), "MMDYN_MMCV_JOBS must be a whole number"),
        'cache-is-a-file': (dict(MMDYN_CACHE=a_file),
                            f'the mmcv wheel cache {a_file}/wheels/mmcv-{MMCV_PIN}-torch'
                            f'{TORCH_PIN}-cpu cannot be created: {a_file} is a file'),
    }[case]
    wheels = tmp / 'wheels'
    wheels.mkdir()
    offline = dict(MMDYN_WHEELS=wheels, PIP_CONFIG_FILE=os.devnull,
                   PIP_INDEX_URL='http://127.0.0.1:9/simple')
    dry = _run(sandbox, **offline, **env)
    real = _run(sandbox, dry_run=False, **offline, **env)
    for proc in (dry, real):
        assert proc.returncode == 1, (proc.stdout, proc.stderr)
        assert f'[mmdyn setup] ERROR: {message}' in proc.stderr
        assert proc.stdout == ''  # no plan, nothing run
    assert dry.stderr == real.stderr
    assert sorted(p.name for p in tmp.iterdir()) == ['a_file', 'fake_bin', 'sandbox_bin',
                                                     'wheels']


def test_the_jobs_of_the_mmcv_build_are_planned(sandbox):
    proc = _run(sandbox, MMDYN_MMCV_JOBS='3')
    assert proc.returncode == 0, proc.stderr
    assert proc.plan['mmcv_jobs'] == '3 (from MMDYN_MMCV_JOBS)'
    proc = _run(sandbox, MMDYN_MMCV_JOBS='')  # empty: the default
    assert proc.returncode == 0, proc.stderr
    jobs, source = proc.plan['mmcv_jobs'].split(' ', 1)
    assert int(jobs) >= 1 and source == '(nproc)'


def test_unknown_argument(sandbox):
    proc = _run(sandbox, '--fast')
    assert proc.returncode == 2 and 'unknown argument --fast' in proc.stderr


# -------------------------------------------------------------- bring your own torch
def test_system_torch_is_reused_not_installed(sandbox):
    proc = _run(sandbox, MMDYN_TORCH='system')
    assert proc.returncode == 0, proc.stderr
    assert proc.plan['mode'] == 'system'
    assert proc.plan['torch'].startswith(f'{torch.__version__} (from {sys.executable}')
    assert proc.plan['venv'].endswith('(--system-site-packages), to be created')
    assert proc.plan['cache_key'] == f'mmcv-{MMCV_PIN}-torch{torch.__version__}-cpu'
    assert not any('torch==' in c or 'torchvision==' in c for c in _pip_lines(proc))
    assert any('-m venv --system-site-packages' in c for c in proc.commands)
    if sys.prefix != sys.base_prefix:  # this interpreter is a venv: its packages via a .pth
        assert 'would write: ' in proc.stdout and '_mmdyn_system_torch.pth' in proc.stdout


def test_system_torch_key_has_torch_cuda_and_arch(sandbox):
    if torch.version.cuda is None:
        pytest.skip('this torch is a CPU build')
    tmp, fake, _ = sandbox
    _fake_nvidia_smi(fake, ('8.9', ))
    toolkit = _fake_toolkit(tmp / 'cuda', torch.version.cuda)
    proc = _run(sandbox, MMDYN_TORCH='system', CUDA_HOME=toolkit)
    assert proc.returncode == 0, proc.stderr
    assert proc.plan['cache_key'] == (f'mmcv-{MMCV_PIN}-torch{torch.__version__}-cuda'
                                      f'{torch.version.cuda}-arch89')


def test_system_torch_needs_an_interpreter_with_torch(sandbox):
    tmp = sandbox[0]
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(tmp / 'bare')],
                   check=True)
    proc = _run(sandbox, MMDYN_TORCH='system', PYTHON=tmp / 'bare' / 'bin' / 'python')
    assert proc.returncode == 1
    assert 'cannot import torch' in proc.stderr and 'set PYTHON to the interpreter' in proc.stderr


# -------------------------------------------------------------- local wheel folder
def test_wheel_folder_makes_every_pip_call_offline(sandbox):
    tmp, fake, _ = sandbox
    wheels = tmp / 'wheels'
    wheels.mkdir()
    _fake_nvidia_smi(fake)
    toolkit = _fake_toolkit(tmp / 'cuda', PINNED_CUDA)
    for env in ({}, dict(MMDYN_TORCH='system', CUDA_HOME=toolkit)):
        proc = _run(sandbox, MMDYN_WHEELS=wheels, MMDYN_MMCV_CUDA='0', **env)
        assert proc.returncode == 0, proc.stderr
        assert proc.plan['packages_from'] == f'{wheels} (pip --no-index --find-links)'
        pip = _pip_lines(proc)
        assert len(pip) >= 7  # pip, build tools, mmcv sdist, mmcv, runtime deps, stack, -e
        for line in pip:
            assert f'--no-index --find-links {wheels}' in line, line
        assert any('download' in line and f'mmcv=={MMCV_PIN}' in line for line in pip)


def test_print_requirements():
    out = subprocess.run(['bash', SETUP, '--print-requirements'], capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert f'torch torch=={TORCH_PIN}' in out
    assert f'sdist mmcv=={MMCV_PIN}' in out
    assert 'stack onnx==1.23.2' in out and 'stack onnxruntime==1.32.0' in out
    kinds = {line.split()[0] for line in out}
    assert kinds == {'pip', 'build', 'torch', 'mmcv-runtime', 'stack', 'sdist'}
    system = subprocess.run(['bash', SETUP, '--print-requirements'], capture_output=True,
                            text=True, check=True,
                            env=dict(os.environ, MMDYN_TORCH='system')).stdout.splitlines()
    assert not [line for line in system if line.startswith('torch ')]
    assert set(system) == {line for line in out if not line.startswith('torch ')}


# -------------------------------------------------------------- cache and stamp
def test_cached_wheel_for_this_python_is_reused(sandbox):
    tmp = sandbox[0]
    key = f'mmcv-{MMCV_PIN}-torch{TORCH_PIN}-cpu'
    folder = tmp / 'cache' / 'wheels' / key
    folder.mkdir(parents=True)
    (folder / f'mmcv-{MMCV_PIN}-cp39-cp39-linux_x86_64.whl').write_bytes(b'')  # other Python
    proc = _run(sandbox)
    assert proc.plan['cached_wheel'] == 'none (mmcv will be built)'
    mine = folder / f'mmcv-{MMCV_PIN}-{PY_TAG}-{PY_TAG}-linux_x86_64.whl'
    mine.write_bytes(b'')
    proc = _run(sandbox)
    assert proc.returncode == 0, proc.stderr
    assert proc.plan['cached_wheel'] == str(mine)
    assert not [c for c in proc.commands
                if re.search(r'pip --disable-pip-version-check (download|wheel) ', c)]
    assert any(f'--force-reinstall {mine}' in c for c in proc.commands)


def test_up_to_date_stamp_is_a_no_op(sandbox):
    """A real (not dry) run with a matching stamp exits at once and touches nothing."""
    tmp = sandbox[0]
    (tmp / 'venv' / 'bin').mkdir(parents=True)
    (tmp / 'venv' / 'bin' / 'python').symlink_to(sys.executable)
    proc = _run(sandbox)
    assert proc.plan['stamp'] == 'stale'
    stamp = tmp / 'venv' / '.mmdyn-stamp'
    stamp.write_text(proc.plan['stamp_text'] + '\n')
    proc = _run(sandbox, dry_run=False)
    assert proc.returncode == 0, proc.stderr
    assert 'environment up to date' in proc.stderr
    assert sorted(p.name for p in (tmp / 'venv').iterdir()) == ['.mmdyn-stamp', 'bin']
    assert not (tmp / 'cache').exists()
    # another mmcv build (CUDA) invalidates it
    _fake_nvidia_smi(sandbox[1])
    toolkit = _fake_toolkit(tmp / 'cuda', PINNED_CUDA)
    assert _run(sandbox, CUDA_HOME=toolkit).plan['stamp'] == 'stale'


# ------------------------------------------------------- real offline run (slow)
def _repack_installed(name, folder):
    """A wheel of an installed pure-Python distribution, zipped from its RECORD."""
    from importlib.metadata import distribution
    dist = distribution(name)
    path = folder / f'{dist.metadata["Name"].replace("-", "_")}-{dist.version}-py3-none-any.whl'
    with zipfile.ZipFile(path, 'w') as zf:
        for entry in dist.files:
            if entry.parts[0] == '..' or '__pycache__' in entry.parts:
                continue
            if entry.locate().is_file():
                zf.write(entry.locate(), str(entry))
    return path


def _stand_in_wheel(name, version, folder):
    """An empty wheel that only satisfies a requirement on ``name``."""
    dist = f'{name.replace("-", "_")}-{version}'
    path = folder / f'{dist}-py3-none-any.whl'
    with zipfile.ZipFile(path, 'w') as zf:
        zf.writestr(f'{dist}.dist-info/METADATA',
                    f'Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n')
        zf.writestr(f'{dist}.dist-info/WHEEL', 'Wheel-Version: 1.0\nGenerator: test\n'
                    'Root-Is-Purelib: true\nTag: py3-none-any\n')
        zf.writestr(f'{dist}.dist-info/RECORD', '')
    return path


@pytest.mark.slow
def test_offline_install_on_system_torch(sandbox):
    """MMDYN_TORCH=system + MMDYN_WHEELS for real: a venv on top of this interpreter's
    packages (torch, the OpenMMLab stack), the mmcv wheel from a cache seeded with this
    machine's CPU build, a wheel folder holding only what this interpreter cannot
    satisfy (setuptools and opencv-python-headless repacked from it, a stand-in for the
    opencv-python that mmengine requires), every pip call offline (pip's config
    ignored and an unreachable index URL set, so a call that ignored --no-index would
    fail). It proves the system-torch venv, the .pth bridge and the offline pip flags,
    not a download of the stack."""
    tmp = sandbox[0]
    for name in ('mmcv', 'mmdet', 'mmpretrain', 'onnx', 'onnxruntime', 'PySide6'):
        pytest.importorskip(name)
    cache = os.environ.get('MMDYN_CACHE', osp.expanduser('~/.cache/mmdyn'))
    source = osp.join(cache, 'wheels', f'mmcv-{MMCV_PIN}-torch{TORCH_PIN}-cpu')
    built = [f for f in os.listdir(source) if f.startswith(f'mmcv-{MMCV_PIN}-{PY_TAG}')] \
        if osp.isdir(source) else []
    if not built:
        pytest.skip(f'no cached CPU mmcv wheel for {PY_TAG} in {source}')
    seeded = tmp / 'cache' / 'wheels' / f'mmcv-{MMCV_PIN}-torch{torch.__version__}-cpu'
    seeded.mkdir(parents=True)
    shutil.copy(osp.join(source, built[0]), seeded)
    wheels = tmp / 'wheels'
    wheels.mkdir()
    # A new venv brings its own setuptools (Python < 3.12: an old one) that shadows this
    # interpreter's; the folder supplies the pinned range as tools/download_wheels.sh would.
    _repack_installed('setuptools', wheels)
    # mmengine requires opencv-python (the GUI build); the set-up removes it again and puts
    # the headless build back from the folder: a stand-in and this interpreter's headless.
    _stand_in_wheel('opencv-python', '4.99', wheels)
    _repack_installed('opencv-python-headless', wheels)
    proc = _run(sandbox, dry_run=False, MMDYN_TORCH='system', MMDYN_WHEELS=wheels,
                PIP_CONFIG_FILE=os.devnull, PIP_INDEX_URL='http://127.0.0.1:9/simple',
                MMDYN_MMCV_CUDA='0')
    assert proc.returncode == 0, proc.stderr[-3000:]
    vpy = tmp / 'venv' / 'bin' / 'python'
    assert (tmp / 'venv' / '.mmdyn-stamp').is_file()
    check = subprocess.run([str(vpy), '-c', 'import sys, torch, mmcv, mmdyn.ops; '
                            'print(torch.__version__, mmcv.__file__, sys.prefix)'],
                           capture_output=True, text=True, check=True).stdout.split()
    assert check[0] == torch.__version__
    assert check[1].startswith(str(tmp / 'venv'))  # mmcv from the cached wheel, in the venv
    again = _run(sandbox, dry_run=False, MMDYN_TORCH='system', MMDYN_WHEELS=wheels,
                 PIP_CONFIG_FILE=os.devnull, MMDYN_MMCV_CUDA='0')
    assert again.returncode == 0 and 'environment up to date' in again.stderr
