"""Safe output paths for the tools: never write over a file that is read.

Every mmdyn tool that writes files chooses their paths here (standard library
only, so light tools can import it):

* :func:`check_output_path` -- a single output named by the user (``--out``,
  ``--json``, a destination checkpoint) must not be one of the tool's input
  files (same path after resolving links, or the same file through a hard
  link); otherwise a one-line :class:`OutputPathError` names the argument.
* :class:`OutputNamer` -- one output per input in an output folder (annotated
  images, figures): the name keeps the input's path relative to its input root,
  adds a suffix (``cat.png`` -> ``cat_pred.png``) and, when that name is taken
  by an input file or by an earlier output of the same run, a counter
  (``cat_pred_1.png``). Existing files that are not inputs (e.g. the results
  of an earlier run) are overwritten.
* :func:`check_own_output` -- a fixed-name output that may only replace a
  previous output of the same tool, recognised by the marker line the tool
  writes at its top (e.g. ``tools/analysis_tools/model_zoo.py``).
* :func:`new_file_path` -- a name that no existing file has (``x.py``,
  ``x_1.py``, ...), created empty so that no other writer can take it (the
  config dump of ``tools/train.py`` / ``tools/test.py``).
* :func:`atomic_output` (:func:`temp_file_beside` + :func:`replace_file`) -- write to a temporary
  file next to the output, then rename it over the output: an interrupted run
  never leaves a partial output, and the file gets the mode every other new
  file gets (``0o666`` less the umask, :func:`umask_mode`; ``mkstemp`` alone
  would leave ``0o600``).
"""
import contextlib
import os
import os.path as osp
import tempfile
import threading
from typing import Iterable, Iterator, Optional, Set, Tuple


class OutputPathError(ValueError):
    """An output path would overwrite an input file."""


def _key(path: str) -> str:
    return osp.normcase(osp.realpath(osp.abspath(osp.expanduser(str(path)))))


def _inode(path: str) -> Optional[Tuple[int, int]]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class _InputSet:
    """Resolved paths and inodes of the input files."""

    def __init__(self, inputs: Iterable[str]):
        self.keys: Set[str] = set()
        self.inodes: Set[Tuple[int, int]] = set()
        for path in inputs:
            if path is None or '://' in str(path):
                continue
            self.keys.add(_key(path))
            inode = _inode(path)
            if inode is not None:
                self.inodes.add(inode)

    def __contains__(self, path: str) -> bool:
        if _key(path) in self.keys:
            return True
        inode = _inode(path)
        return inode is not None and inode in self.inodes


def existing_ancestor(path: str) -> str:
    """The absolute ``path`` itself if it exists, else its nearest existing
    parent (the folder a new ``path`` would be created in)."""
    probe = osp.abspath(osp.expanduser(str(path)))
    while not osp.exists(probe):
        parent = osp.dirname(probe)
        if parent == probe:
            break
        probe = parent
    return probe


def check_output_path(out: str, inputs: Iterable[str], arg: str = '--out') -> str:
    """Return ``out`` unless it is one of ``inputs``.

    Args:
        out: The output file the tool is about to write.
        inputs: Every file the tool reads (``None`` entries and URLs ignored).
        arg: The command-line argument that named ``out`` (for the message).

    Raises:
        OutputPathError: ``out`` is an input file (same resolved path or the
            same file through a link).
    """
    if out is not None and out in _InputSet(inputs):
        raise OutputPathError(f'{arg} {out} is one of the input files; writing it would '
                              'overwrite that input: choose another output path')
    return out


def check_distinct_outputs(outputs: Iterable[Tuple[str, Optional[str]]]) -> None:
    """Raise :class:`OutputPathError` when two outputs of one run are the same file.

    Args:
        outputs: ``(argument name, path)`` pairs; ``None`` paths are skipped.
    """
    seen = {}
    for arg, path in outputs:
        if path is None:
            continue
        key = _key(path)
        if key in seen:
            raise OutputPathError(f'{arg} and {seen[key]} name the same file {path}; '
                                  'give them different paths')
        seen[key] = arg


class OutputNamer:
    """Unique output paths in ``out_dir`` for the inputs of one run.

    Args:
        out_dir: The output folder.
        inputs: Every input file of the run (never used as an output).
        suffix: Added to each output's stem. Default: ``'_pred'``.
        reserved: Further paths that outputs must not take (e.g. a JSON
            report written by the same run).

    Example::

        namer = OutputNamer('out', inputs=['a/x.png', 'b/x.png'])
        namer.path_for('x.png')   # 'out/x_pred.png'
        namer.path_for('x.png')   # 'out/x_pred_1.png'
    """

    def __init__(self, out_dir: str, inputs: Iterable[str] = (), suffix: str = '_pred',
                 reserved: Iterable[str] = ()):
        if osp.exists(out_dir) and not osp.isdir(out_dir):
            raise OutputPathError(f'output folder {out_dir} is a file; expected a folder '
                                  '(created if missing)')
        self.out_dir = out_dir
        self.suffix = suffix
        self._inputs = _InputSet(inputs)
        self._taken: Set[str] = {_key(p) for p in reserved if p is not None}

    def path_for(self, relative_name: str, ext: Optional[str] = None) -> str:
        """A fresh output path for the input known as ``relative_name``.

        Args:
            relative_name: The input's path relative to its input root (its
                file name for a file input); folders in it are kept.
            ext: Extension of the output (with the dot); default: the input's.

        Returns:
            ``out_dir/<relative stem><suffix>[_N]<ext>``, neither an input file
            nor a path already returned by this namer.
        """
        rel = osp.normpath(str(relative_name)).lstrip(os.sep)
        if rel.startswith('..'):
            rel = osp.basename(rel)
        stem, own_ext = osp.splitext(rel)
        ext = own_ext if ext is None else ext
        n = 0
        while True:
            tail = f'_{n}' if n else ''
            path = osp.join(self.out_dir, f'{stem}{self.suffix}{tail}{ext}')
            if path not in self._inputs and _key(path) not in self._taken:
                self._taken.add(_key(path))
                return path
            n += 1


def check_own_output(out: str, marker: str, arg: str = '--out') -> bool:
    """Check that ``out`` is new or a previous output of the same tool.

    A tool that writes a fixed-name text output puts ``marker`` on its first
    line; an existing file is only replaced when its first line is that
    marker, so that no file the tool did not write (a config, a document) is
    ever overwritten.

    Args:
        out: The output file.
        marker: The tool's marker line (without the newline).
        arg: The command-line argument that named ``out`` (for the message).

    Returns:
        Whether ``out`` exists (and is a previous output of the tool).

    Raises:
        OutputPathError: ``out`` is a folder, or a file without the marker.
    """
    if osp.isdir(out):
        raise OutputPathError(f'{arg} {out} is a folder; give a file name')
    if not osp.lexists(out):
        return False
    try:
        with open(out, encoding='utf-8', errors='replace') as f:
            first = f.readline().rstrip('\r\n')
    except OSError as err:
        raise OutputPathError(f'{arg} {out} exists and cannot be read ({err.strerror}); '
                              'choose another output path') from None
    if first != marker:
        raise OutputPathError(f'{arg} {out} exists and was not written by this tool (its first '
                              'line is not the marker line); choose another output path or '
                              'remove the file')
    return True


def new_file_path(path: str) -> str:
    """Create and return an empty file at ``path``, or at ``<stem>_N<ext>``
    beside it (the first ``N`` = 1, 2, ... not taken) when a file is there.

    The file is created exclusively (``O_EXCL``), so an existing file is never
    the result and two writers never get the same name.

    Raises:
        OSError: The folder of ``path`` does not exist or is not writable.
    """
    stem, ext = osp.splitext(path)
    n = 0
    while True:
        candidate = f'{stem}_{n}{ext}' if n else path
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            n += 1
            continue
        os.close(fd)
        return candidate


_UMASK_LOCK = threading.Lock()


def umask_mode(mode: int = 0o666) -> int:
    """``mode`` less the process umask: the mode a new file opened with
    ``open(path, 'w')`` gets.

    The umask is read from ``/proc/self/status`` where the kernel reports it
    (Linux); elsewhere it is read by setting and restoring it under a lock.
    """
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('Umask:'):
                    return mode & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        umask = os.umask(0o022)
        os.umask(umask)
    return mode & ~umask


def temp_file_beside(path: str, suffix: str = '', prefix: Optional[str] = None) -> str:
    """Create an empty temporary file in the folder of ``path`` (created if
    missing) and return its path; pass it to :func:`replace_file` when
    written (and remove it on failure).

    Args:
        path: The output the temporary file will replace.
        suffix: End of the temporary name (e.g. ``'.onnx'`` for writers that
            look at the extension).
        prefix: Start of the temporary name; default ``'.<file name>.'``.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    if prefix is None:
        prefix = f'.{osp.basename(path)}.'
    fd, tmp = tempfile.mkstemp(suffix=suffix, prefix=prefix, dir=folder)
    os.close(fd)
    return tmp


def replace_file(tmp: str, path: str) -> None:
    """Rename the written temporary file ``tmp`` over ``path``, with the mode
    that writing ``path`` in place would give: the existing file's permission
    bits when ``path`` exists, else ``0o666`` less the umask."""
    try:
        mode = os.stat(path).st_mode & 0o777
    except OSError:
        mode = umask_mode()
    os.chmod(tmp, mode)
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_output(path: str, suffix: str = '', prefix: Optional[str] = None) -> Iterator[str]:
    """Write ``path`` through a temporary file beside it: yields the temporary
    path (:func:`temp_file_beside`); when the block ends without an error it is
    renamed over ``path`` (:func:`replace_file`), and in every case no
    temporary file is left behind.

    Example::

        with atomic_output('model.pth', suffix='.partial') as tmp:
            torch.save(state, tmp)
    """
    tmp = temp_file_beside(path, suffix=suffix, prefix=prefix)
    try:
        yield tmp
        replace_file(tmp, path)
    finally:
        if osp.lexists(tmp):
            os.remove(tmp)
