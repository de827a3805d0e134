"""Train a model from an MMDetection 3.x or MMPretrain 1.x config with mmdyn.

Usage::

    python tools/train.py CONFIG [--work-dir DIR] [--amp] [--auto-scale-lr]
        [--resume [CHECKPOINT]] [--cfg-options KEY=VALUE ...]
        [--launcher {none,pytorch,slurm,mpi}]

The config's ``default_scope`` ('mmdet' or 'mmpretrain') selects the framework.
Without CUDA, distributed training (``--launcher pytorch``, e.g. through
``tools/dist_train.sh``) runs over gloo on the CPU (see ``mmdyn.engine.dist``).

``RNGStateHook`` is added to ``custom_hooks`` unless the config has it: every
checkpoint then holds the RNG states of all ranks and ``--resume`` continues
with them, so a killed and resumed run gives the losses of an uninterrupted one
(``mmdyn.engine.rng``). A ``--resume`` checkpoint of another model is refused
with a one-line error before anything is loaded. The work is done by
:mod:`mmdyn.engine.runner`.
"""
import argparse
import sys

from mmdyn.datasets import check_dataset_paths
from mmdyn.engine import CheckpointMismatchError, cli
from mmdyn.engine.runner import WorkDirLockedError, build_runner, build_train_config, run_train


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a detector or classifier (mmdyn)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and checkpoints '
                        '(default: ./work_dirs/<config name>)')
    parser.add_argument('--amp', action='store_true', default=False,
                        help='enable automatic mixed precision training (bfloat16 '
                        'autocast on CPU)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate by the total batch size '
                        '(needs auto_scale_lr.base_batch_size in the config)')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from the given checkpoint; without a value, resume '
                        'from the latest checkpoint in the work dir')
    cli.add_config_options(parser)
    cli.add_launcher_options(parser)
    cli.add_debug_option(parser)
    args = parser.parse_args(argv)
    cli.apply_local_rank(args)
    cli.check_config_path(parser, args.config)
    return args, parser


def build_cfg(args):
    """The training config for the parsed command line."""
    return build_train_config(args.config, args.cfg_options, launcher=args.launcher,
                              work_dir=args.work_dir, amp=args.amp,
                              auto_scale_lr=args.auto_scale_lr, resume=args.resume)


def main(argv=None):
    args, parser = parse_args(argv)
    try:
        cfg = build_cfg(args)
    except (FileNotFoundError, RuntimeError, ValueError) as err:
        parser.error(str(err))
    try:
        check_dataset_paths(cfg, splits=('train', 'val'))
    except (FileNotFoundError, ValueError) as err:  # ValueError: e.g. an empty COCO json
        parser.error(str(err))
    try:
        runner = build_runner(cfg)
    except WorkDirLockedError as err:  # another run holds the work dir
        sys.exit(f'error: {err}')
    try:
        run_train(runner, '--resume' if args.resume is not None else 'resume')
    except CheckpointMismatchError as err:
        sys.exit(f'error: {err}; resume needs a checkpoint of this config\'s model')
    return runner


if __name__ == '__main__':
    cli.run(main)
