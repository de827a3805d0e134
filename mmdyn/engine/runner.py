"""Configs and runners of ``tools/train.py`` and ``tools/test.py``.

The command-line tools parse their options and call this module:
:func:`build_train_config` / :func:`build_test_config` read the config through
:func:`mmdyn.engine.config.load_config` and apply the options,
:func:`build_runner` builds the MMEngine ``Runner`` (with the CPU gloo path of
:mod:`mmdyn.engine.dist` when there is no CUDA), and :func:`run_train` /
:func:`run_test` run it with :class:`~mmdyn.engine.checkpoint.CheckpointFitHook`
refusing a checkpoint of another model before its weights are copied.

The runner of :func:`build_runner` never writes over a file it did not create
and never shares its work dir with another run:

* the config dump goes into the run's timestamp folder
  (``WORK_DIR/<timestamp>/<config file name>``, or ``<name>_1.py`` ... when
  that name is taken) instead of MMEngine's ``WORK_DIR/<config file name>``,
  which replaced the user's config when the work dir is the config's folder;
* the work dir is locked for the life of the run
  (:mod:`mmdyn.engine.work_dir_lock`, taken while the runner is built, released
  by :func:`run_train` / :func:`run_test` on any exit): a second run into the
  same work dir refuses at start, naming the first.

Errors are one-line exceptions (``FileNotFoundError``, ``RuntimeError``,
``ValueError``) that the tools print as argparse errors.
"""
import functools
import os.path as osp
from typing import Optional

import torch
from mmengine.dist import master_only
from mmengine.logging import print_log

from mmdyn.utils.output_paths import existing_ancestor, new_file_path

from .checkpoint import CheckpointFitHook
from .cli import why_not_writable_dir
from .config import load_config
from .dist import cpu_model_wrapper_cfg, init_cpu_dist_if_needed
from .hooks import find_hook_cfg
from .work_dir_lock import WorkDirLockedError, acquire_run_lock

__all__ = ['build_train_config', 'build_test_config', 'build_runner', 'run_train', 'run_test',
           'apply_amp', 'use_cpu_amp', 'apply_auto_scale_lr', 'apply_resume',
           'apply_pretrained', 'check_work_dir', 'set_work_dir', 'ensure_rng_state_hook',
           'enable_visualization', 'setup_distributed', 'release_run_lock',
           'WorkDirLockedError']


def apply_amp(cfg) -> None:
    """Switch the optimizer wrapper to mixed precision (``--amp``; CPU: bf16 autocast).

    Raises:
        ValueError: The config uses an optimizer wrapper other than
            ``OptimWrapper`` (or an AMP one).
    """
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
    """Replace ``AmpOptimWrapper`` (which asserts a GPU) by ``CPUAmpOptimWrapper``
    (bfloat16 autocast, no loss scaling) when CUDA is not available."""
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
    """Enable the config's ``auto_scale_lr`` (``--auto-scale-lr``).

    Raises:
        RuntimeError: The config has no ``auto_scale_lr.base_batch_size``.
    """
    auto = cfg.get('auto_scale_lr')
    if not auto or 'base_batch_size' not in auto:
        raise RuntimeError('--auto-scale-lr needs auto_scale_lr = dict(base_batch_size=N) '
                           'in the config (the batch size the learning rate was tuned for)')
    cfg.auto_scale_lr.enable = True


def apply_resume(cfg, resume: Optional[str]) -> None:
    """``--resume``: ``None`` does nothing, ``'auto'`` resumes from the latest
    checkpoint of the work dir, a path or URL from that checkpoint.

    Raises:
        FileNotFoundError: ``resume`` is a local path that does not exist.
    """
    if resume is None:
        return
    cfg.resume = True
    if resume == 'auto':
        cfg.load_from = None
    else:
        if '://' not in resume and not osp.isfile(resume):
            raise FileNotFoundError(f'--resume checkpoint not found: {resume}')
        cfg.load_from = resume


def apply_pretrained(cfg, cfg_options: Optional[dict]) -> None:
    """Honour ``--cfg-options pretrained=PATH`` for mmdyn configs.

    mmdyn's configs derive the backbone's ``init_cfg`` (and, for detectors,
    ``frozen_stages`` / ``norm_eval``) from their ``pretrained`` variable when
    the file is parsed, so overriding the variable alone changes nothing. Here
    the same policy is applied after the override: inflate from ``PATH`` and,
    for mmdet configs, freeze the stem + stage 1 and the BN statistics as
    mmdet's ImageNet-pretrained recipes do. ``pretrained=None`` (or empty)
    drops the backbone's ``init_cfg``.

    Raises:
        ValueError: The model has no backbone.
        FileNotFoundError: ``PATH`` is a local path that does not exist.
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
    as one (no file at its path or at one of its parents); ``name`` is the
    option named in the message."""
    path = existing_ancestor(work_dir)  # exists: '/' at the farthest
    if not osp.isdir(path):
        what = 'is a file' if path == osp.abspath(osp.expanduser(str(work_dir))) \
            else f'is inside {path}, which is a file'
        raise ValueError(f'{name} must be a directory (created if missing), but '
                         f'{work_dir} {what}')
    why = why_not_writable_dir(work_dir)
    if why is not None:
        raise ValueError(f'{name} {work_dir} cannot be used: {why}')


def set_work_dir(cfg, work_dir: Optional[str]) -> None:
    """Set and check ``cfg.work_dir``: ``work_dir`` (``--work-dir``) if given,
    else the config's, else ``./work_dirs/<config name>`` (as MMDetection).

    Raises:
        ValueError: The chosen work dir is, or is inside, a file, or there is
            none to choose (a ``Config`` without file name or ``work_dir``).
    """
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        if not cfg.filename:
            raise ValueError('the config has no work_dir and no file name to derive one '
                             'from; pass a work dir')
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(cfg.filename))[0])
    check_work_dir(cfg.work_dir, '--work-dir' if work_dir is not None else 'work_dir')


def ensure_rng_state_hook(cfg) -> None:
    """Add ``RNGStateHook`` (RNG states in checkpoints, exact resumes;
    :mod:`mmdyn.engine.rng`) to ``custom_hooks`` unless the config has it."""
    if find_hook_cfg(cfg, 'RNGStateHook') is None:
        cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [dict(type='RNGStateHook')]


def enable_visualization(cfg, show_dir: str) -> None:
    """Turn on the config's visualization hook writing to ``show_dir``
    (mmdet: ``draw``/``test_out_dir``; mmpretrain: ``enable``/``out_dir``).

    Raises:
        RuntimeError: The config has no ``default_hooks.visualization``.
    """
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


def _load(config, cfg_options, launcher: str, work_dir: Optional[str]):
    """The config (:func:`~mmdyn.engine.config.load_config`: a ``data_root`` of
    ``cfg_options`` reaches every dataloader and evaluator, explicit per-dataset
    options win) with the options shared by training and testing applied; its
    ``default_scope`` (``'mmdet'`` when absent) becomes the current registry scope.
    """
    cfg = load_config(config, cfg_options, init_scope=True)
    cfg.launcher = launcher
    set_work_dir(cfg, work_dir)
    return cfg


def build_train_config(config, cfg_options: Optional[dict] = None, *, launcher: str = 'none',
                       work_dir: Optional[str] = None, amp: bool = False,
                       auto_scale_lr: bool = False, resume: Optional[str] = None):
    """The training config of ``tools/train.py``.

    Args:
        config: Config file path (or ``mmengine.Config``, not modified).
        cfg_options: ``--cfg-options`` overrides; ``pretrained=PATH`` also
            re-applies the backbone initialisation (:func:`apply_pretrained`).
        launcher: ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.
        work_dir: ``--work-dir`` (:func:`set_work_dir`).
        amp: Mixed precision (:func:`apply_amp`); without it an
            ``AmpOptimWrapper`` of the config still becomes the CPU one when
            CUDA is not available.
        auto_scale_lr: :func:`apply_auto_scale_lr`.
        resume: ``--resume`` (:func:`apply_resume`).

    Returns:
        The ``mmengine.Config``, with ``RNGStateHook`` in ``custom_hooks``.

    Raises:
        FileNotFoundError, RuntimeError, ValueError: A one-line message naming
            the option or config field at fault.
    """
    cfg = _load(config, cfg_options, launcher, work_dir)
    apply_pretrained(cfg, cfg_options)
    ensure_rng_state_hook(cfg)
    if amp:
        apply_amp(cfg)
    else:
        use_cpu_amp(cfg, torch.cuda.is_available())
    if auto_scale_lr:
        apply_auto_scale_lr(cfg)
    apply_resume(cfg, resume)
    return cfg


def build_test_config(config, checkpoint: str, cfg_options: Optional[dict] = None, *,
                      launcher: str = 'none', work_dir: Optional[str] = None,
                      show_dir: Optional[str] = None):
    """The evaluation config of ``tools/test.py``: ``checkpoint`` loaded, no resume.

    Args:
        config: Config file path (or ``mmengine.Config``, not modified).
        checkpoint: Checkpoint file or URL (``load_from``).
        cfg_options: ``--cfg-options`` overrides.
        launcher: ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.
        work_dir: ``--work-dir`` (:func:`set_work_dir`).
        show_dir: ``--show-dir`` (:func:`enable_visualization`).

    Raises:
        RuntimeError, ValueError: A one-line message naming the option or
            config field at fault.
    """
    cfg = _load(config, cfg_options, launcher, work_dir)
    cfg.load_from = checkpoint
    cfg.resume = False
    if show_dir:
        enable_visualization(cfg, show_dir)
    if cfg.get('test_dataloader') is None or cfg.get('test_evaluator') is None:
        raise RuntimeError('the config has no test_dataloader/test_evaluator to test with')
    return cfg


def setup_distributed(cfg, launcher: str) -> None:
    """Without CUDA: a gloo process group before the Runner is built and the
    CPU DDP wrapper (:mod:`mmdyn.engine.dist`); with CUDA nothing."""
    if init_cpu_dist_if_needed(launcher, cfg):
        cfg.model_wrapper_cfg = cpu_model_wrapper_cfg(cfg)


class _SafeRunnerMixin:
    """What :func:`build_runner` adds to the MMEngine runner class: the work-dir
    lock (taken in ``setup_env``, once the process group and the rank are
    known, before the log file or anything else is written) and a config dump
    that cannot replace a file."""

    _mmdyn_lock = None
    _mmdyn_locked = False  # whether the lock was taken (rank 0) or agreed (other ranks)

    def __init__(self, *args, **kwargs):
        try:
            super().__init__(*args, **kwargs)
            if not self._mmdyn_locked:  # a runner class without setup_env (FlexibleRunner)
                self._take_work_dir_lock()
        except BaseException:
            release_run_lock(self)
            raise

    def setup_env(self, env_cfg) -> None:
        super().setup_env(env_cfg)
        self._take_work_dir_lock()

    def _take_work_dir_lock(self) -> None:
        self._mmdyn_lock = acquire_run_lock(self._work_dir)
        self._mmdyn_locked = True
        if self._mmdyn_lock is not None and self._mmdyn_lock.stale:
            stale = self._mmdyn_lock.stale
            print_log(f'work dir {self._work_dir}: took over the lock left by pid '
                      f'{stale.get("pid")} on {stale.get("host")} (started '
                      f'{stale.get("started")}), which ended without releasing it',
                      logger='current')

    @master_only
    def dump_config(self) -> None:
        """Dump the config to ``log_dir/<config file name>`` (``log_dir`` is the
        run's timestamp folder), or to the first ``<name>_N<ext>`` there that
        no file has."""
        name = (osp.basename(self.cfg.filename) if self.cfg.filename
                else f'{self.timestamp}.py')
        self.cfg.dump(new_file_path(osp.join(self.log_dir, name)))


@functools.lru_cache(maxsize=None)
def _safe_runner_class(base):
    """``base`` (an MMEngine runner class) with :class:`_SafeRunnerMixin`."""
    if issubclass(base, _SafeRunnerMixin):
        return base
    return type(base.__name__, (_SafeRunnerMixin, base),
                dict(__module__=__name__, __doc__=base.__doc__))


def build_runner(cfg):
    """The MMEngine runner of ``cfg`` (``runner_type`` honoured), after
    :func:`setup_distributed` for ``cfg.launcher``.

    The runner holds the lock of its work dir until :func:`run_train` /
    :func:`run_test` (or :func:`release_run_lock`) releases it, and dumps the
    config into its timestamp folder (see the module docstring).

    Raises:
        WorkDirLockedError: Another run holds the work dir (on every rank of a
            distributed run); the message names it.
        KeyError: ``runner_type`` is not a registered runner.
    """
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    setup_distributed(cfg, cfg.get('launcher', 'none'))
    with RUNNERS.switch_scope_and_registry(cfg.get('_scope_')) as registry:
        runner_type = cfg.get('runner_type', Runner)
        base = registry.get(runner_type) if isinstance(runner_type, str) else runner_type
        if base is None:
            raise KeyError(f'runner_type {runner_type!r} is not a registered runner')
        return _safe_runner_class(base).from_cfg(cfg)


def release_run_lock(runner) -> None:
    """Release the work-dir lock that ``runner`` (of :func:`build_runner`)
    holds; nothing if it holds none."""
    lock = getattr(runner, '_mmdyn_lock', None)
    if lock is not None:
        lock.release()


def run_train(runner, resume_name: str = 'resume'):
    """``runner.train()``; a resumed run first refuses a checkpoint of another model.

    Args:
        runner: From :func:`build_runner` of a :func:`build_train_config`.
        resume_name: How the resume checkpoint is named in the error
            (``'--resume'`` when it came from the command line).

    Returns:
        The trained model (what ``Runner.train`` returns).

    Raises:
        CheckpointMismatchError: The resume checkpoint does not fit the model
            (raised before its weights are copied; a checkpoint of another
            model would otherwise fail deep inside the optimizer step).
    """
    cfg = runner.cfg
    if cfg.get('resume'):
        source = (f'{resume_name} checkpoint {cfg.load_from}' if cfg.get('load_from')
                  else f'{resume_name} checkpoint (the latest in {cfg.work_dir})')
        runner.register_hook(CheckpointFitHook(source=source))
    try:
        return runner.train()
    finally:
        release_run_lock(runner)


def run_test(runner, checkpoint: str, *, out: Optional[str] = None, allow_partial: bool = False,
             allow_nonfinite: bool = False):
    """``runner.test()`` after checking the checkpoint against the model.

    MMEngine loads with ``strict=False``; the check runs before the weights
    are copied, so no metric comes from random weights.

    Args:
        runner: From :func:`build_runner` of a :func:`build_test_config`.
        checkpoint: Named in the error messages.
        out: Also dump the predictions to this pickle file (MMEngine's
            ``DumpResults``).
        allow_partial: Load a checkpoint that does not fit anyway (what fits),
            logging the mismatch as a warning.
        allow_nonfinite: Evaluate a checkpoint holding NaN/inf values anyway,
            logging their summary as a warning.

    Returns:
        The metrics dict (every rank holds the collected metrics).

    Raises:
        CheckpointMismatchError: The checkpoint does not fit the model.
        UnsafeCheckpointError: The checkpoint needs more than weights-only loading.
        NonFiniteCheckpointError: It holds NaN/inf values (not ``allow_nonfinite``).
        InvalidTemperatureError: It holds an invalid attention temperature.
    """
    if out is not None:
        from mmengine.evaluator import DumpResults
        runner.test_evaluator.metrics.append(DumpResults(out_file_path=out))
    runner.register_hook(CheckpointFitHook(allow_partial, source=f'checkpoint {checkpoint}',
                                           allow_nonfinite=allow_nonfinite))
    try:
        return runner.test()
    finally:
        release_run_lock(runner)
