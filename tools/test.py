"""Test (evaluate) a checkpoint with an MMDetection 3.x or MMPretrain 1.x config.

Usage::

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl]
        [--show-dir DIR] [--cfg-options KEY=VALUE ...]
        [--launcher {none,pytorch,slurm,mpi}] [--allow-partial-checkpoint]

Prints the metrics as one line ``mmdyn test metrics: {...}`` (rank 0 only) after
MMEngine's log.

``CHECKPOINT`` is a file or any source MMEngine accepts (``https://...``,
``torchvision://...``), always loaded weights-only. A checkpoint that does not
fit the model (missing, unexpected or shape-mismatched keys, e.g. a static
checkpoint for a dynamic config) is refused before anything is evaluated: a
one-line error with the counts and the first keys, exit status 1. With
``--allow-partial-checkpoint`` it is loaded anyway (what fits) and the same
summary is logged as a warning.
"""
import argparse
import os
import os.path as osp
import sys

_REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from train import (build_runner, check_work_dir,  # noqa: E402  (tools/ is on sys.path)
                   setup_distributed)


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description='Test (and evaluate) a checkpoint (mmdyn)')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the evaluation log '
                        '(default: ./work_dirs/<config name>)')
    parser.add_argument('--out', help='dump the predictions to this pickle file '
                        '(.pkl or .pickle) for offline evaluation')
    parser.add_argument('--show-dir', help='save the visualised predictions to this dir '
                        '(needs default_hooks.visualization in the config)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, key=value pairs')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--allow-partial-checkpoint', action='store_true',
                        help='load a checkpoint that does not fit the model anyway (only '
                        'the keys that fit; the mismatch is logged as a warning) instead '
                        'of refusing it')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    if not osp.isfile(args.config):
        parser.error(f'config file not found: {args.config}')
    if '://' not in args.checkpoint and not osp.isfile(args.checkpoint):
        parser.error(f'checkpoint file not found: {args.checkpoint}')
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        parser.error(f'--out must be a .pkl or .pickle file, got {args.out}')
    from mmdyn.output_paths import OutputPathError, check_output_path
    try:
        check_output_path(args.out, (args.config, args.checkpoint), '--out')
    except OutputPathError as err:
        parser.error(str(err))
    return args, parser


def enable_visualization(cfg, show_dir: str) -> None:
    """Turn on the config's visualization hook writing to ``show_dir``
    (mmdet: ``draw``/``test_out_dir``; mmpretrain: ``enable``/``out_dir``)."""
    hooks = cfg.get('default_hooks') or {}
    if 'visualization' not in hooks:
        raise RuntimeError("--show-dir needs default_hooks.visualization = "
                           "dict(type='VisualizationHook') in the config")
    hook = hooks['visualization']
    if cfg.get('default_scope', 'mmdet') == 'mmdet':
        hook['draw'] = True
        hook['test_out_dir'] = show_dir
    else:
        hook['enable'] = True
        hook['out_dir'] = show_dir


def build_cfg(args):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    check_work_dir(cfg.work_dir, '--work-dir' if args.work_dir is not None else 'work_dir')
    cfg.load_from = args.checkpoint
    cfg.resume = False
    if args.show_dir:
        enable_visualization(cfg, args.show_dir)
    if cfg.get('test_dataloader') is None or cfg.get('test_evaluator') is None:
        raise RuntimeError('the config has no test_dataloader/test_evaluator to test with')
    return cfg


def main(argv=None):
    args, parser = parse_args(argv)
    import mmdyn.models  # noqa: F401  (mmdyn registrations, safe checkpoint loading)
    import mmdyn.engine  # noqa: F401
    try:
        cfg = build_cfg(args)
    except (RuntimeError, ValueError) as err:
        parser.error(str(err))
    from mmdyn.datasets import check_dataset_paths
    try:
        check_dataset_paths(cfg, splits=('test', ))
    except FileNotFoundError as err:
        parser.error(str(err))
    setup_distributed(cfg, args.launcher)
    runner = build_runner(cfg)
    if args.out is not None:
        from mmengine.evaluator import DumpResults
        runner.test_evaluator.metrics.append(DumpResults(out_file_path=args.out))
    from mmdyn.engine import CheckpointFitHook, CheckpointMismatchError, UnsafeCheckpointError
    # Checks the checkpoint against the model before its weights are copied
    # (MMEngine loads with strict=False), so no metric comes from random weights.
    runner.register_hook(CheckpointFitHook(args.allow_partial_checkpoint,
                                           source=f'checkpoint {args.checkpoint}'))
    try:
        metrics = runner.test()
    except (CheckpointMismatchError, UnsafeCheckpointError) as err:
        hint = ('; pass --allow-partial-checkpoint to load it anyway'
                if isinstance(err, CheckpointMismatchError) else '')
        sys.exit(f'error: {err}{hint}')
    from mmengine.dist import get_rank
    if get_rank() == 0:  # every rank holds the collected metrics; print them once
        print(f'mmdyn test metrics: {metrics}', flush=True)
    return metrics


if __name__ == '__main__':
    main()
