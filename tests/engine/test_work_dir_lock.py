"""The work-dir lock of tools/train.py and tools/test.py
(``mmdyn.engine.work_dir_lock``, issue 17 section 1): one run per work dir,
released on any exit, stale locks of dead processes taken over, the lock file
never one the user owns."""
import json
import os
import signal
import subprocess
import sys

import pytest

from _runs import start_lock_holder
from mmdyn.engine import work_dir_lock
from mmdyn.engine.work_dir_lock import LOCK_NAME, WorkDirLock, WorkDirLockedError

def _start_holder(work_dir):
    return start_lock_holder(work_dir, '--first-run-marker')


def test_second_lock_in_process_is_refused_naming_the_first(tmp_path):
    first = WorkDirLock(str(tmp_path)).acquire()
    try:
        with pytest.raises(WorkDirLockedError) as info:
            WorkDirLock(str(tmp_path)).acquire()
        message = str(info.value)
        assert '\n' not in message and 'in use by another run' in message
        assert f'pid {os.getpid()}' in message and 'started 20' in message
        assert 'command: ' in message and str(tmp_path) in message
    finally:
        first.release()
    assert not (tmp_path / LOCK_NAME).exists()  # released: the file is gone
    WorkDirLock(str(tmp_path)).acquire().release()  # and the dir can be locked again


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGKILL], ids=['SIGTERM', 'SIGKILL'])
def test_lock_of_another_process_refuses_until_it_dies(tmp_path, sig):
    """The representative cross-process test: a live holder is named, a killed
    one (no clean-up ran) leaves a stale file that the next run takes over."""
    proc = _start_holder(tmp_path)
    try:
        with pytest.raises(WorkDirLockedError, match=f'pid {proc.pid} on .*--first-run-marker'):
            WorkDirLock(str(tmp_path)).acquire()
    finally:
        proc.send_signal(sig)
        proc.wait(timeout=20)
        proc.stdout.close()
    assert (tmp_path / LOCK_NAME).exists()  # killed outright: the file stays
    lock = WorkDirLock(str(tmp_path)).acquire()
    try:
        assert lock.stale['pid'] == proc.pid
        holder = json.loads((tmp_path / LOCK_NAME).read_text())
        assert holder['pid'] == os.getpid()
    finally:
        lock.release()


def test_lock_file_of_a_dead_pid_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                          capture_output=True, text=True, check=True)
    stale = dict(format='mmdyn-work-dir-lock', pid=int(dead.stdout), host='h',
                 started='2000-01-01 00:00:00', command='python tools/train.py x.py')
    (tmp_path / LOCK_NAME).write_text(json.dumps(stale))
    with WorkDirLock(str(tmp_path)) as lock:
        assert lock.stale == stale
    assert not (tmp_path / LOCK_NAME).exists()


def test_lock_file_of_a_dead_pid_without_flock_support(tmp_path, monkeypatch):
    """Where the file system has no flock, the content decides: a dead pid on
    this host is stale, a live one is refused."""
    import errno
    import fcntl
    import socket

    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, 'No locks available')

    monkeypatch.setattr(fcntl, 'flock', no_flock)
    host = socket.gethostname()
    proc = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    try:
        holder = dict(format='mmdyn-work-dir-lock', pid=proc.pid, host=host,
                      started='2000-01-01 00:00:00', command='python tools/train.py x.py')
        (tmp_path / LOCK_NAME).write_text(json.dumps(holder))
        with pytest.raises(WorkDirLockedError, match=f'pid {proc.pid} on {host}'):
            WorkDirLock(str(tmp_path)).acquire()
    finally:
        proc.kill()
        proc.wait()
    with WorkDirLock(str(tmp_path)) as lock:
        assert lock.stale['pid'] == proc.pid


def test_a_foreign_lock_file_is_not_replaced(tmp_path):
    (tmp_path / LOCK_NAME).write_text('my notes\n')
    with pytest.raises(WorkDirLockedError, match='is not an mmdyn lock file'):
        WorkDirLock(str(tmp_path)).acquire()
    assert (tmp_path / LOCK_NAME).read_text() == 'my notes\n'


def test_released_on_exception_and_when_collected(tmp_path):
    with pytest.raises(ZeroDivisionError):
        with WorkDirLock(str(tmp_path)):
            1 / 0
    assert not (tmp_path / LOCK_NAME).exists()
    lock = WorkDirLock(str(tmp_path)).acquire()
    del lock  # a runner dropped without run_train/run_test
    import gc
    gc.collect()
    WorkDirLock(str(tmp_path)).acquire().release()


def test_only_rank_0_takes_the_lock_and_every_rank_gets_its_answer(tmp_path, monkeypatch):
    """The ranks of one distributed run never refuse each other: rank 0 locks,
    the others only receive its answer (and refuse with rank 0's message)."""
    import mmengine.dist as dist
    sent = {}

    def broadcast(data, src=0, group=None):
        if dist.get_rank() == 0:
            sent['message'] = data[0]
        else:
            data[0] = sent['message']

    monkeypatch.setattr(dist, 'get_world_size', lambda group=None: 2)
    monkeypatch.setattr(dist, 'broadcast_object_list', broadcast)
    monkeypatch.setattr(dist, 'get_rank', lambda group=None: 0)
    lock = work_dir_lock.acquire_run_lock(str(tmp_path))
    assert lock is not None and lock.held and sent['message'] is None
    monkeypatch.setattr(dist, 'get_rank', lambda group=None: 1)
    assert work_dir_lock.acquire_run_lock(str(tmp_path)) is None  # same run, rank 1: no lock
    # A second run into the same dir: rank 0 is refused, and so is rank 1.
    monkeypatch.setattr(dist, 'get_rank', lambda group=None: 0)
    with pytest.raises(WorkDirLockedError, match='in use by another run'):
        work_dir_lock.acquire_run_lock(str(tmp_path))
    monkeypatch.setattr(dist, 'get_rank', lambda group=None: 1)
    with pytest.raises(WorkDirLockedError, match='in use by another run'):
        work_dir_lock.acquire_run_lock(str(tmp_path))
    lock.release()


def test_a_link_at_the_lock_name_is_not_followed(tmp_path):
    target = tmp_path / 'users_empty_file'
    target.write_text('')
    work = tmp_path / 'work'
    work.mkdir()
    (work / LOCK_NAME).symlink_to(target)
    with pytest.raises(WorkDirLockedError, match=f'cannot create the lock file {work}'):
        work_dir_lock.acquire_run_lock(str(work))
    assert target.read_text() == ''
