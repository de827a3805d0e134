"""One run per work dir: the lock of ``tools/train.py`` and ``tools/test.py``.

Two runs writing into one work dir interleave its log and replace each other's
checkpoints. :class:`WorkDirLock` makes the second run refuse at start, naming
the first: the lock is ``WORK_DIR/.mmdyn.lock``, an ``fcntl.flock`` on the open
file, held for the life of the run. The file holds one line of JSON naming the
holder (pid, host, start time, command) for the message of a refused run.

* Released on every exit: :meth:`WorkDirLock.release` (called by
  :func:`mmdyn.engine.runner.run_train` / ``run_test`` whatever happens, and when
  the lock object is garbage-collected or the interpreter exits) removes the
  file; a process that dies without cleaning up (``SIGTERM``, ``SIGKILL``, a
  crash) has its ``flock`` released by the operating system, and the file it
  leaves is then recognised as stale and taken over.
* One lock per run: in a distributed run only global rank 0 takes it, and its
  answer is broadcast, so every rank of the run starts or every rank refuses
  (:func:`acquire_run_lock`). Ranks on other nodes sharing the folder never
  touch the file.
* File systems without ``flock`` (e.g. Lustre mounted without ``-o flock``):
  the file's content decides instead; a holder on this host whose pid is gone
  is stale, a holder on another host is trusted (remove the file if that run
  is known to be gone).

The file is never one the user owns: an existing ``.mmdyn.lock`` whose content
is not an mmdyn lock is refused, not overwritten.
"""
import errno
import json
import os
import os.path as osp
import socket
import sys
import time
import weakref
from typing import Optional

__all__ = ['LOCK_NAME', 'WorkDirLock', 'WorkDirLockedError', 'acquire_run_lock']

#: The lock file's name inside the work dir.
LOCK_NAME = '.mmdyn.lock'
_FORMAT = 'mmdyn-work-dir-lock'
#: ``flock`` errors that mean "this file system does not support it".
_NO_FLOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)
#: Work dirs (real paths) locked by this process -> their lock (weakly: a lock
#: that is garbage-collected releases itself).
_HELD: 'weakref.WeakValueDictionary[str, WorkDirLock]' = weakref.WeakValueDictionary()


class WorkDirLockedError(RuntimeError):
    """The work dir is in use by another run (or its lock file is not ours)."""


def _holder_info() -> dict:
    return dict(format=_FORMAT, pid=os.getpid(), host=socket.gethostname(),
                started=time.strftime('%Y-%m-%d %H:%M:%S %z'),
                command=' '.join([osp.basename(sys.executable)] + sys.argv))


def _describe(holder: Optional[dict]) -> str:
    if not holder:
        return 'a run that is still starting (its lock file is empty)'
    command = ' '.join(str(holder.get('command')).split())
    return (f'pid {holder.get("pid")} on {holder.get("host")}, started '
            f'{holder.get("started")}, command: {command}')


def _read(fd: int) -> Optional[dict]:
    """The holder recorded in the open lock file: ``{}`` if empty, ``None`` if
    the content is not an mmdyn lock."""
    os.lseek(fd, 0, os.SEEK_SET)
    data = b''
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
        if len(data) > 1 << 20:
            return None
    if not data.strip():
        return {}
    try:
        holder = json.loads(data.decode('utf-8'))
    except (UnicodeDecodeError, ValueError):
        return None
    return holder if isinstance(holder, dict) and holder.get('format') == _FORMAT else None


def _alive(holder: dict) -> bool:
    """Whether the recorded holder may still run: a pid on this host is checked
    (this process's own pid is not a live holder: :data:`_HELD` knows the locks
    it holds), a holder on another host is assumed alive."""
    if holder.get('host') != socket.gethostname():
        return True
    try:
        pid = int(holder.get('pid'))
    except (TypeError, ValueError):
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _release(fd: int, path: str, inode, owner: int) -> None:
    """Remove the lock file (if it is still ours) and drop the lock; nothing in
    a forked child (e.g. a dataloader worker), which must not remove the
    parent's lock."""
    if os.getpid() != owner:
        return
    try:
        st = os.stat(path)
        if (st.st_dev, st.st_ino) == inode:
            os.remove(path)
    except OSError:
        pass
    try:
        os.close(fd)  # closing the last descriptor drops the flock
    except OSError:
        pass


class WorkDirLock:
    """The lock of one run on ``work_dir`` (see the module docstring).

    Args:
        work_dir: The run's work dir (created if missing).

    Example::

        lock = WorkDirLock('work_dirs/x').acquire()   # or raises WorkDirLockedError
        try:
            ...  # the run
        finally:
            lock.release()
    """

    def __init__(self, work_dir: str):
        self.work_dir = str(work_dir)
        self.path = osp.join(self.work_dir, LOCK_NAME)
        self.stale: Optional[dict] = None  # the dead holder taken over, if any
        self.info: Optional[dict] = None  # what the lock file says while held
        self._finalizer = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._finalizer is not None and self._finalizer.alive

    def _refuse(self, holder: Optional[dict]) -> WorkDirLockedError:
        if holder is None:
            return WorkDirLockedError(
                f'{self.path} exists and is not an mmdyn lock file; it is not replaced: move '
                'it away or choose another work dir')
        return WorkDirLockedError(
            f'work dir {self.work_dir} is in use by another run ({_describe(holder)}); '
            'wait for it to finish or choose another work dir (lock file: '
            f'{self.path})')

    def acquire(self) -> 'WorkDirLock':
        """Take the lock or raise.

        Returns:
            ``self``.

        Raises:
            WorkDirLockedError: Another live run holds the lock (the message
                names it), or the lock file is not an mmdyn lock.
            OSError: The lock file cannot be created (e.g. a read-only folder).
        """
        import fcntl
        os.makedirs(self.work_dir, exist_ok=True)
        key = osp.realpath(self.work_dir)
        mine = _HELD.get(key)
        if mine is not None and mine.held:  # this process runs in it already
            raise self._refuse(mine.info)
        for _attempt in range(20):
            # O_NOFOLLOW: a link planted at the lock's name never leads to another file.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, 'O_NOFOLLOW', 0),
                         0o666)
            try:
                flock = True
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise self._refuse(_read(fd)) from None
                except OSError as err:
                    if err.errno not in _NO_FLOCK:
                        raise
                    flock = False
                st = os.fstat(fd)
                try:
                    now = os.stat(self.path)
                except FileNotFoundError:
                    now = None
                if now is None or (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
                    os.close(fd)  # the holder removed the file meanwhile: take the new one
                    continue
                holder = _read(fd)
                if holder is None:
                    raise self._refuse(None)
                if holder and not flock and _alive(holder):
                    raise self._refuse(holder)
                self.stale = holder or None
                self.info = _holder_info()
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, os.SEEK_SET)
                os.write(fd, (json.dumps(self.info) + '\n').encode('utf-8'))
                os.fsync(fd)
            except BaseException:
                os.close(fd)
                raise
            self._finalizer = weakref.finalize(self, _release, fd, self.path,
                                               (st.st_dev, st.st_ino), os.getpid())
            _HELD[key] = self
            return self
        raise WorkDirLockedError(f'could not take the lock {self.path}: it keeps being '
                                 'replaced by another run')

    def release(self) -> None:
        """Remove the lock file and drop the lock (no-op if not held)."""
        if self._finalizer is not None:
            self._finalizer()
        key = osp.realpath(self.work_dir)
        if _HELD.get(key) is self:
            del _HELD[key]

    def __enter__(self) -> 'WorkDirLock':
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def acquire_run_lock(work_dir: str) -> Optional[WorkDirLock]:
    """The lock of the current run on ``work_dir``: taken by global rank 0 only
    and the outcome shared with every rank (MMEngine's process group when one
    is initialised), so that all ranks of a run start or all refuse.

    Returns:
        The held lock on rank 0, ``None`` on the other ranks.

    Raises:
        WorkDirLockedError: On every rank, with rank 0's message, when the
            work dir is in use (or the lock file cannot be created).
    """
    from mmengine.dist import broadcast_object_list, get_rank, get_world_size
    lock, error = None, None
    if get_rank() == 0:
        try:
            lock = WorkDirLock(work_dir).acquire()
        except WorkDirLockedError as err:
            error = str(err)
        except OSError as err:
            error = (f'cannot create the lock file {osp.join(work_dir, LOCK_NAME)}: '
                     f'{err.strerror or err}')
    if get_world_size() > 1:
        message = [error]
        broadcast_object_list(message, src=0)
        error = message[0]
    if error is not None:
        raise WorkDirLockedError(error)
    return lock
