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
"""
import os
import os.path as osp
from typing import Iterable, Optional, Set, Tuple


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

