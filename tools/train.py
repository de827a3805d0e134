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
with a one-line error before anything is loaded.
"""
import argparse
import os
import os.path as osp
import sys

# Run from a checkout without installing: make the repository importable.
_REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)


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
    parser.add_argument('--cfg-options', nargs='+', action=_dict_action(),
                        help='override settings of the config, key=value pairs '
                        '(xxx=yyy or xxx=[a,b] or xxx=(a,b))')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    # torch.distributed.launch passes --local-rank (>= 2.0) or --local_rank.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    if not osp.isfile(args.config):
        parser.error(f'config file not found: {args.config}')
    return args, parser


def _dict_action():
    from mmengine.config import DictAction
    return DictAction


def apply_amp(cfg) -> None:
    """Switch the optimizer wrapper to mixed precision (CPU: bf16 autocast)."""
    import torch
    from mmengine.logging import print_log
    wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper in ('AmpOptimWrapper', 'CPUAmpOptimWrapper'):
        print_log('AMP training is already enabled in your config.', logger='current')
    elif wrapper != 'OptimWrapper':
        raise ValueError(f'--amp is only supported with optim_wrapper type OptimWrapper, '
                         f'but the config uses {wrapper!r}')
    else:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    use_cpu_amp(cfg, torch.cuda.is_available())


def use_cpu_amp(cfg, cuda_available: bool) -> None:
    """MMEngine's ``AmpOptimWrapper`` asserts a GPU; on CPU replace it with
    ``CPUAmpOptimWrapper`` (bfloat16 autocast, no loss scaling)."""
    from mmengine.logging import print_log
    if cuda_available or cfg.get('optim_wrapper', {}).get('type') != 'AmpOptimWrapper':
        return
    cfg.optim_wrapper.type = 'CPUAmpOptimWrapper'
    cfg.optim_wrapper.pop('loss_scale', None)
    dtype = cfg.optim_wrapper.pop('dtype', None)
    if dtype not in (None, 'bfloat16'):
        print_log(f'AMP on CPU supports only bfloat16; ignoring dtype={dtype!r}',
                  logger='current', level=30)
    cfg.optim_wrapper.dtype = 'bfloat16'
    print_log('CUDA is not available: AMP uses bfloat16 CPU autocast (CPUAmpOptimWrapper)',
              logger='current')


def apply_auto_scale_lr(cfg) -> None:
    """Enable the config's ``auto_scale_lr`` (needs ``base_batch_size``)."""
    auto = cfg.get('auto_scale_lr')
    if not auto or 'base_batch_size' not in auto:
        raise RuntimeError('--auto-scale-lr needs auto_scale_lr = dict(base_batch_size=N) '
                           'in the config (the batch size the learning rate was tuned for)')
    cfg.auto_scale_lr.enable = True


def apply_resume(cfg, resume: str) -> None:
    """``--resume`` without value: latest checkpoint of the work dir; with a
    path: that checkpoint (must exist)."""
    if resume is None:
        return
    cfg.resume = True
    if resume == 'auto':
        cfg.load_from = None
    else:
        if '://' not in resume and not osp.isfile(resume):
            raise FileNotFoundError(f'--resume checkpoint not found: {resume}')
        cfg.load_from = resume


def apply_pretrained(cfg, cfg_options) -> None:
    """Honour ``--cfg-options pretrained=PATH`` for mmdyn configs.

    mmdyn's configs derive the backbone's ``init_cfg`` (and, for detectors,
    ``frozen_stages`` / ``norm_eval``) from their ``pretrained`` variable when
    the file is parsed, so overriding the variable alone changes nothing. Here
    the same policy is applied after the override: inflate from ``PATH`` and,
    for mmdet configs, freeze the stem + stage 1 and the BN statistics as
    mmdet's ImageNet-pretrained recipes do.
    """
    if not cfg_options or 'pretrained' not in cfg_options:
        return
    path = cfg_options['pretrained']
    backbone = cfg.model.get('backbone')
    if backbone is None:
        raise ValueError('--cfg-options pretrained=... needs a model with a backbone')
    if path in (None, 'None', ''):
        backbone.init_cfg = None
        return
    if '://' not in path and not osp.isfile(path):
        raise FileNotFoundError(f'pretrained checkpoint not found: {path}')
    backbone.init_cfg = dict(type='Pretrained', checkpoint=path)
    if cfg.get('default_scope', 'mmdet') == 'mmdet':
        backbone.frozen_stages = 1
        backbone.norm_eval = True


def check_work_dir(work_dir: str, name: str = '--work-dir') -> None:
    """Raise ``ValueError`` unless ``work_dir`` is a folder or can be created
    as one (no file at its path or at one of its parents)."""
    path = osp.abspath(osp.expanduser(str(work_dir)))
    while not osp.exists(path):
        parent = osp.dirname(path)
        if parent == path:
            return
        path = parent
    if not osp.isdir(path):
        what = 'is a file' if path == osp.abspath(osp.expanduser(str(work_dir))) \
            else f'is inside {path}, which is a file'
        raise ValueError(f'{name} must be a directory (created if missing), but '
                         f'{work_dir} {what}')


def ensure_rng_state_hook(cfg) -> None:
    """Add ``RNGStateHook`` (RNG states in checkpoints, exact resumes) to
    ``custom_hooks`` unless the config has it."""
    from mmdyn.engine.hooks import find_hook_cfg
    if find_hook_cfg(cfg, 'RNGStateHook') is None:
        cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [dict(type='RNGStateHook')]


def build_cfg(args):
    """Load the config and apply the command-line options."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
        apply_pretrained(cfg, args.cfg_options)
    cfg.launcher = args.launcher
    init_default_scope(cfg.get('default_scope', 'mmdet'))

    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    check_work_dir(cfg.work_dir, '--work-dir' if args.work_dir is not None else 'work_dir')
    ensure_rng_state_hook(cfg)

    if args.amp:
        apply_amp(cfg)
    else:
        use_cpu_amp(cfg, torch.cuda.is_available())
    if args.auto_scale_lr:
        apply_auto_scale_lr(cfg)
    apply_resume(cfg, args.resume)
    return cfg


def setup_distributed(cfg, launcher: str) -> None:
    """Without CUDA: gloo process group before the Runner + CPU DDP wrapper."""
    from mmdyn.engine import cpu_model_wrapper_cfg, init_cpu_dist_if_needed
    if init_cpu_dist_if_needed(launcher, cfg):
        cfg.model_wrapper_cfg = cpu_model_wrapper_cfg(cfg)


def build_runner(cfg):
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)


def main(argv=None):
    args, parser = parse_args(argv)
    import mmdyn.models  # noqa: F401  (mmdyn registrations, safe checkpoint loading)
    import mmdyn.engine  # noqa: F401  (hooks, CPU wrappers)
    try:
        cfg = build_cfg(args)
    except (FileNotFoundError, RuntimeError, ValueError) as err:
        parser.error(str(err))
    from mmdyn.datasets import check_dataset_paths
    try:
        check_dataset_paths(cfg, splits=('train', 'val'))
    except FileNotFoundError as err:
        parser.error(str(err))
    setup_distributed(cfg, args.launcher)
    runner = build_runner(cfg)
    from mmdyn.engine import CheckpointFitHook, CheckpointMismatchError
    if cfg.get('resume'):
        # A checkpoint of another model fails deep inside the optimizer step;
        # refuse it before its weights are copied.
        name = '--resume' if args.resume is not None else 'resume'
        source = (f'{name} checkpoint {cfg.load_from}' if cfg.get('load_from')
                  else f'{name} checkpoint (the latest in {cfg.work_dir})')
        runner.register_hook(CheckpointFitHook(source=source))
    try:
        runner.train()
    except CheckpointMismatchError as err:
        sys.exit(f'error: {err}; resume needs a checkpoint of this config\'s model')
    return runner


if __name__ == '__main__':
    main()
