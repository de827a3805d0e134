"""What several suites read from or do to a training run:
``from _runs import losses, start_lock_holder`` (``tests/`` is on ``sys.path``)."""
import glob
import json
import os.path as osp
import subprocess
import sys
import textwrap

# A "first run" in another process: takes the work-dir lock, says so, then waits to be
# killed. The lock module is loaded from its file (standard library only) to start fast.
_HOLDER = textwrap.dedent('''
    import importlib.util, sys, time
    spec = importlib.util.spec_from_file_location('wdl', sys.argv[1])
    wdl = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(wdl)
    lock = wdl.WorkDirLock(sys.argv[2]).acquire()
    print('locked', flush=True)
    time.sleep(60)
''')


def losses(work_dir, run=-1):
    """``{iteration: loss}`` of one run's scalars.json (runs sorted by time)."""
    runs = sorted(glob.glob(osp.join(str(work_dir), '*', 'vis_data', 'scalars.json')))
    assert runs, f'no scalars.json under {work_dir}'
    out = {}
    with open(runs[run]) as f:
        for line in f:
            entry = json.loads(line)
            if 'loss' in entry:
                out[entry['step']] = entry['loss']
    return out


def start_lock_holder(work_dir, *command) -> subprocess.Popen:
    """A process that holds the work-dir lock of ``work_dir`` (its command line ends
    with ``command``, which the refusal of a second run quotes); returns once it holds it."""
    from mmdyn.engine import work_dir_lock
    proc = subprocess.Popen([sys.executable, '-c', _HOLDER, work_dir_lock.__file__,
                             str(work_dir), *command], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == 'locked'
    return proc
