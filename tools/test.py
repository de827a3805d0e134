"""Test (evaluate) a checkpoint with an MMDetection 3.x or MMPretrain 1.x config.

Usage::

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl]
        [--show-dir DIR] [--cfg-options KEY=VALUE ...]
        [--launcher {none,pytorch,slurm,mpi}] [--allow-partial-checkpoint]
        [--allow-nonfinite]

Prints the metrics as one line ``mmdyn test metrics: {...}`` (rank 0 only) after
MMEngine's log.

``CHECKPOINT`` is a file or any source MMEngine accepts (``https://...``,
``torchvision://...``), always loaded weights-only. A checkpoint that does not
fit the model (missing, unexpected or shape-mismatched keys, e.g. a static
checkpoint for a dynamic config) is refused before anything is evaluated: a
one-line error with the counts and the first keys, exit status 1. With
``--allow-partial-checkpoint`` it is loaded anyway (what fits) and the same
summary is logged as a warning. A checkpoint holding NaN/inf values is refused
the same way (how many, in which tensors) unless ``--allow-nonfinite``; one with
an invalid attention temperature always is. The work is done by
:mod:`mmdyn.engine.runner`.
"""
import argparse
import sys

from mmengine.dist import get_rank

from mmdyn.datasets import check_dataset_paths
from mmdyn.engine import CheckpointError, CheckpointMismatchError, NonFiniteCheckpointError, cli
from mmdyn.engine.runner import WorkDirLockedError, build_runner, build_test_config, run_test
from mmdyn.utils.output_paths import OutputPathError, check_output_path


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) a checkpoint (mmdyn)')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the evaluation log '
                        '(default: ./work_dirs/<config name>)')
    parser.add_argument('--out', help='dump the predictions to this pickle file '
                        '(.pkl or .pickle) for offline evaluation')
    parser.add_argument('--show-dir', help='save the visualised predictions to this dir '
                        '(needs default_hooks.visualization in the config)')
    cli.add_config_options(parser)
    cli.add_launcher_options(parser)
    cli.add_partial_checkpoint_option(parser)
    parser.add_argument('--allow-nonfinite', action='store_true',
                        help='evaluate a checkpoint holding NaN/inf values anyway (refused by '
                        'default: its metrics would mean nothing)')
    cli.add_debug_option(parser)
    args = parser.parse_args(argv)
    cli.apply_local_rank(args)
    cli.check_config_path(parser, args.config)
    cli.check_checkpoint_path(parser, args.checkpoint)
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        parser.error(f'--out must be a .pkl or .pickle file, got {args.out}')
    try:
        check_output_path(args.out, (args.config, args.checkpoint), '--out')
    except OutputPathError as err:
        parser.error(str(err))
    return args, parser


def build_cfg(args):
    """The evaluation config for the parsed command line."""
    return build_test_config(args.config, args.checkpoint, args.cfg_options,
                             launcher=args.launcher, work_dir=args.work_dir,
                             show_dir=args.show_dir)


def main(argv=None):
    args, parser = parse_args(argv)
    try:
        cfg = build_cfg(args)
    except (RuntimeError, ValueError) as err:
        parser.error(str(err))
    try:
        check_dataset_paths(cfg, splits=('test', ))
    except (FileNotFoundError, ValueError) as err:  # ValueError: e.g. an empty COCO json
        parser.error(str(err))
    try:
        runner = build_runner(cfg)
    except WorkDirLockedError as err:  # another run holds the work dir
        sys.exit(f'error: {err}')
    try:
        metrics = run_test(runner, args.checkpoint, out=args.out,
                           allow_partial=args.allow_partial_checkpoint,
                           allow_nonfinite=args.allow_nonfinite)
    except CheckpointError as err:
        hint = ('; pass --allow-partial-checkpoint to load it anyway'
                if isinstance(err, CheckpointMismatchError) else
                '; pass --allow-nonfinite to evaluate it anyway'
                if isinstance(err, NonFiniteCheckpointError) else '')
        sys.exit(f'error: {err}{hint}')
    if get_rank() == 0:  # every rank holds the collected metrics; print them once
        print(f'mmdyn test metrics: {metrics}', flush=True)
    return metrics


if __name__ == '__main__':
    cli.run(main)
