"""Command-line pieces shared by the scripts in ``tools/``.

Every tool builds its own :class:`argparse.ArgumentParser`; the options and
path checks that several tools have in common are added here, so that their
names, defaults, help and error messages stay the same everywhere. The checks
end the tool through ``parser.error`` (usage, one-line message, exit status 2).
"""
import argparse
import os
import os.path as osp

from mmengine.config import DictAction

#: Help of ``--cfg-options``.
CFG_OPTIONS_HELP = ('override settings of the config, key=value pairs '
                    '(xxx=yyy or xxx=[a,b] or xxx=(a,b))')

#: Help of ``--allow-partial-checkpoint`` unless a tool passes its own.
PARTIAL_CHECKPOINT_HELP = ('load a checkpoint that does not fit the model anyway (only the '
                           'keys that fit, with a warning) instead of refusing it')

#: The job launchers of ``--launcher`` (MMEngine's).
LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--cfg-options KEY=VALUE ...`` (MMEngine's ``DictAction``).

    Args:
        parser: The tool's parser; ``args.cfg_options`` is a dict or None.
    """
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help=CFG_OPTIONS_HELP)


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
