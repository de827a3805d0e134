"""Command-line pieces shared by the scripts in ``tools/``.

Every tool builds its own :class:`argparse.ArgumentParser`; the options and
path checks that several tools have in common are added here, so that their
names, defaults, help and error messages stay the same everywhere. The checks
end the tool through ``parser.error`` (usage, one-line message, exit status 2).

Every tool's ``if __name__ == '__main__':`` block is ``cli.run(main)``
(:func:`run`): a refusal that reaches it as one of the package's clear error
types (:data:`CLEAR_ERRORS`) is printed as one line ``error: <message>`` (exit
status 1) instead of a traceback; ``--debug`` (:func:`add_debug_option`) shows
the traceback. ``main(argv)`` itself raises as before, for in-process callers.
"""
import argparse
import os
import os.path as osp
import pickle
import sys
import tempfile
import traceback
from typing import Callable, Optional, Sequence

import torch.distributed as dist
from mmengine.config import DictAction

from mmdyn.utils.checkpoint_errors import CheckpointError
from mmdyn.utils.output_paths import existing_ancestor

#: Help of ``--cfg-options``.
CFG_OPTIONS_HELP = ('override settings of the config, key=value pairs '
                    '(xxx=yyy or xxx=[a,b] or xxx=(a,b))')

#: Help of ``--allow-partial-checkpoint`` unless a tool passes its own.
PARTIAL_CHECKPOINT_HELP = ('load a checkpoint that does not fit the model anyway (only the '
                           'keys that fit, with a warning) instead of refusing it')

#: The job launchers of ``--launcher`` (MMEngine's).
LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')


#: What ``--cfg-options`` values can be: MMEngine's ``DictAction`` syntax.
CFG_OPTIONS_SYNTAX = ('a value is a number, true/false, None, a string, or a [..] list / (..) '
                      'tuple of those; for a dict, set its keys one by one (KEY.SUBKEY=VALUE)')


class ConfigOptionsAction(DictAction):
    """MMEngine's ``DictAction`` that refuses what it cannot parse with one line.

    MMEngine's parser splits ``KEY=VALUE`` without checking for the ``=`` (a
    ``ValueError`` traceback), recurses without end on ``dict(a=1,b=2)`` (a
    ``RecursionError``) and asserts on unbalanced brackets. Here each item is
    parsed on its own and any failure ends the tool through ``parser.error``
    naming the item. A plain value (no list, tuple or comma) keeps its inner
    spaces (MMEngine would turn ``data_root=/data/my set`` into
    ``/data/myset``); quotes around it are removed as MMEngine does.
    """

    def __call__(self, parser, namespace, values, option_string=None):
        options = dict(getattr(namespace, self.dest, None) or {})
        name = option_string or '--cfg-options'
        for item in values or ():
            key, sep, value = item.partition('=')
            if not sep or not key.strip():
                parser.error(f'{name} {item!r}: expected KEY=VALUE (e.g. '
                             f'train_cfg.max_epochs=12)')
            key = key.strip()
            try:
                options[key] = parse_option_value(value)
            except ValueError as err:
                parser.error(f'{name} {item}: cannot parse the value ({err}); '
                             f'{CFG_OPTIONS_SYNTAX}')
        setattr(namespace, self.dest, options)


def parse_option_value(value: str):
    """One ``--cfg-options`` value as MMEngine's ``DictAction`` reads it.

    A value without brackets or commas is a scalar: quotes around it are
    removed and its inner spaces kept; the rest goes to MMEngine's parser.

    Args:
        value: The text after the first ``=``.

    Returns:
        An int, float, bool, None, str, list or tuple.

    Raises:
        ValueError: MMEngine's parser cannot read ``value`` (a call such as
            ``dict(...)``, unbalanced brackets); the message says why.
    """
    text = value.strip()
    if not any(c in text for c in '[](),'):
        if len(text) >= 2 and text[0] == text[-1] and text[0] in '\'"':
            text = text[1:-1]
        return DictAction._parse_int_float_bool(text)
    try:
        return DictAction._parse_iterable(value)
    except RecursionError:
        raise ValueError('dict(...) and other calls are not understood') from None
    except Exception as err:  # MMEngine asserts on unbalanced brackets
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(reason) from None


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--cfg-options KEY=VALUE ...`` (MMEngine's syntax; an item that
    cannot be parsed ends the tool with one line naming it,
    :class:`ConfigOptionsAction`).

    Args:
        parser: The tool's parser; ``args.cfg_options`` is a dict or None.
    """
    parser.add_argument('--cfg-options', nargs='+', action=ConfigOptionsAction,
                        help=CFG_OPTIONS_HELP)


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--device`` (default ``'cpu'``; ``'cuda'`` or ``'cuda:N'`` for a GPU).

    Args:
        parser: The tool's parser.
    """
    parser.add_argument('--device', default='cpu', help="'cpu' (default) or 'cuda[:N]'")


def add_partial_checkpoint_option(parser: argparse.ArgumentParser,
                                  help: str = PARTIAL_CHECKPOINT_HELP) -> None:
    """Add the ``--allow-partial-checkpoint`` flag.

    Without it a checkpoint that does not fit the model is refused
    (:class:`mmdyn.engine.CheckpointMismatchError`).

    Args:
        parser: The tool's parser.
        help: The option's help text, for a tool that says more about it.
    """
    parser.add_argument('--allow-partial-checkpoint', action='store_true', help=help)


def add_launcher_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--launcher`` and the ``--local_rank`` / ``--local-rank`` that
    ``torch.distributed.launch`` passes (``--local-rank`` from torch 2.0 on).

    Call :func:`apply_local_rank` on the parsed arguments.

    Args:
        parser: The parser of a tool that runs MMEngine's ``Runner``.
    """
    parser.add_argument('--launcher', choices=list(LAUNCHERS), default='none',
                        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def apply_local_rank(args: argparse.Namespace) -> None:
    """Set ``LOCAL_RANK`` in the environment from ``args.local_rank`` unless a
    launcher has set it already.

    Args:
        args: Arguments parsed with the options of :func:`add_launcher_options`.
    """
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)


def check_config_path(parser: argparse.ArgumentParser, path: str) -> None:
    """Stop with ``config file not found: PATH`` unless ``path`` is a file.

    Args:
        parser: The tool's parser (its ``error`` exits with status 2).
        path: The config file given on the command line.
    """
    if not osp.isfile(path):
        parser.error(f'config file not found: {path}')


def check_checkpoint_path(parser: argparse.ArgumentParser, path: str,
                          urls: bool = True) -> None:
    """Stop with ``checkpoint file not found: PATH`` unless ``path`` is a file.

    Args:
        parser: The tool's parser (its ``error`` exits with status 2).
        path: The checkpoint given on the command line.
        urls: Accept any source with ``://`` (``https://``, ``torchvision://``,
            ...) without a check; the loader reports those.
    """
    if (not urls or '://' not in path) and not osp.isfile(path):
        parser.error(f'checkpoint file not found: {path}')


def why_not_writable_dir(path: str) -> Optional[str]:
    """Why ``path`` cannot be used as an output folder, or ``None`` if it can.

    The folder itself (when it exists) or the nearest existing folder above it
    (when it is still to be created) must accept new entries; this is tried
    with a temporary entry that is removed at once, so read-only mounts,
    ``/proc`` and missing permissions (also for root) are all found.

    Args:
        path: The folder (need not exist).

    Returns:
        A reason such as ``'/proc does not accept new folders (...)'`` or
        ``None``. :func:`mmdyn.engine.runner.check_work_dir` (every work dir of
        ``tools/train.py`` and ``tools/test.py``) raises it as a one-line
        ``ValueError``.
    """
    full = osp.abspath(osp.expanduser(str(path)))
    probe = existing_ancestor(full)
    if not osp.isdir(probe):
        return 'it is a file' if probe == full else f'{probe} is a file, not a folder'
    try:
        if probe == full:
            with tempfile.TemporaryFile(dir=probe):
                pass
        else:
            os.rmdir(tempfile.mkdtemp(prefix='.mmdyn-probe-', dir=probe))
    except OSError as err:
        what = 'is not writable' if probe == full else 'does not accept new folders'
        return f'{probe} {what} ({err.strerror or err})'
    return None


# ------------------------------------------------------------------ one-line errors
#: Help of ``--debug``.
DEBUG_HELP = 'show the full traceback of an error instead of its one-line message'


def add_debug_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--debug``: an error ends the tool with its traceback, not with the
    one line of :func:`run`.

    Args:
        parser: The tool's parser; ``args.debug`` is a bool.
    """
    parser.add_argument('--debug', action='store_true', help=DEBUG_HELP)


def clear_error_types() -> tuple:
    """The exception types that :func:`run` prints as one line (see
    :data:`CLEAR_ERRORS`)."""
    return (ValueError, RuntimeError, OSError, pickle.UnpicklingError, CheckpointError)


#: The exceptions the package raises for a refusal with a one-line message
#: (``ValueError`` with its ``CheckpointMismatchError``, ``OutputPathError``;
#: ``RuntimeError``; ``OSError`` with ``FileNotFoundError``;
#: ``pickle.UnpicklingError`` with ``UnsafeCheckpointError``; mmdyn's
#: ``CheckpointError``). Anything else is a bug and keeps its traceback.
CLEAR_ERRORS = clear_error_types()


def _message(err: BaseException) -> str:
    """``err``'s message for one ``error:`` line (its type when it has none)."""
    text = str(err).strip()
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        text = f'{err.filename}: {err.strerror}'  # '[Errno 2] No such file ...: X' reads worse
    return text or type(err).__name__


def close_process_group() -> None:
    """Destroy the ``torch.distributed`` process group of a distributed run, if
    one is initialised, before the interpreter exits: a gloo group left to the
    interpreter's shutdown can abort a rank after its work is done
    ("terminate called without an active exception", SIGABRT), which
    torchrun then reports as a failed run."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def run(main: Callable[..., object], argv: Optional[Sequence[str]] = None) -> None:
    """Run a tool's ``main(argv)`` and exit the process with one line per error.

    The tool's ``if __name__ == '__main__':`` block. An exception of the
    package's clear types (:data:`CLEAR_ERRORS`) is printed as
    ``error: <message>`` on stderr, exit status 1; with ``--debug`` on the
    command line (:func:`add_debug_option`) it is raised instead (the
    traceback); a refusal that ``main`` catches itself and ends with
    ``sys.exit`` / ``parser.error`` prints, with ``--debug``, the traceback of
    the error it caught before its line. Ctrl-C ends the tool with
    ``error: interrupted``, exit status 130. The process group of a
    distributed run is destroyed before the exit (:func:`close_process_group`).
    ``SystemExit`` (``parser.error``, ``sys.exit``) passes unchanged, and
    so does any other exception (a bug: its traceback is wanted).

    Args:
        main: The tool's ``main(argv)``.
        argv: The arguments (default: ``sys.argv[1:]``).

    Exits with ``main``'s return value when it is an int, else 0.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = '--debug' in (argv[:argv.index('--')] if '--' in argv else argv)
    try:
        code = main(argv)
    except KeyboardInterrupt:
        print('error: interrupted', file=sys.stderr, flush=True)
        sys.exit(130)
    except CLEAR_ERRORS as err:
        if debug:
            raise
        print(f'error: {_message(err)}', file=sys.stderr, flush=True)
        sys.exit(1)
    except SystemExit as stop:
        # A refusal the tool caught itself (``sys.exit(f'error: {err}')``,
        # ``parser.error(str(err))``): with --debug, the traceback of the caught error too.
        cause = stop.__context__
        if debug and isinstance(cause, Exception):
            traceback.print_exception(cause, file=sys.stderr)
        raise
    finally:
        close_process_group()
    sys.exit(code if isinstance(code, int) and not isinstance(code, bool) else 0)

