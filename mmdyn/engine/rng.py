"""Random number generator states in checkpoints, for exact resumes.

A dynamic layer that samples at random (A2D2C/A2D2C+ with the default
``sampling='random'``), dropout and the data transforms all draw from the
process's global generators: torch (CPU and CUDA), NumPy and Python's
``random``. MMEngine's checkpoints do not hold their states, so a run that is
killed and resumed continues with freshly seeded generators and its losses
drift away from those of an uninterrupted run.

:class:`RNGStateHook` stores the states of all four generators of every rank
in ``checkpoint['rng_states']`` and, on ``--resume``, gives every rank its own
states back at the point of the loop where they were taken, so a resumed run
computes the same losses as an uninterrupted one with the same seed.

Only tensors, ints, floats, strings, tuples, lists and dicts are stored, so
the weights-only loader of :mod:`mmdyn.engine.checkpoint` reads them.
"""
import random
from typing import Any, Callable, Dict, Iterator, List, Optional

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import CheckpointHook, Hook
from mmengine.registry import HOOKS
from mmengine.runner.base_loop import BaseLoop

#: Key of the states in an MMEngine checkpoint dict.
CHECKPOINT_KEY = 'rng_states'


def get_rng_state() -> Dict[str, Any]:
    """The states of this process's torch, CUDA, NumPy and Python generators.

    CUDA states are included only when CUDA has been initialised (taking them
    would otherwise initialise it).

    Returns:
        dict: ``torch`` (uint8 tensor), ``numpy`` (tuple; the key as an int64
        tensor), ``python`` (tuple of ints) and, with CUDA, ``cuda`` (a tuple
        of uint8 tensors, one per device).
    """
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = dict(torch=torch.get_rng_state(),
                 numpy=(str(name), torch.from_numpy(keys.astype(np.int64)), int(pos),
                        int(has_gauss), float(cached)),
                 python=random.getstate())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = tuple(torch.cuda.get_rng_state_all())
    return state


def set_rng_state(state: Dict[str, Any]) -> List[str]:
    """Restore what :func:`get_rng_state` returned (possibly after a round
    trip through a checkpoint, tensors on any device).

    Returns:
        list[str]: Problems that prevented restoring a part (e.g. another
        number of CUDA devices); empty when everything was restored.
    """
    problems = []
    torch.set_rng_state(state['torch'].cpu())
    name, keys, pos, has_gauss, cached = state['numpy']
    np.random.set_state((name, keys.cpu().numpy().astype(np.uint32), int(pos), int(has_gauss),
                         float(cached)))
    version, internal, gauss_next = state['python']
    random.setstate((version, tuple(internal), gauss_next))
    cuda = state.get('cuda')
    if cuda is not None:
        if not torch.cuda.is_available():
            problems.append('the checkpoint has CUDA generator states but CUDA is not '
                            'available')
        elif len(cuda) != torch.cuda.device_count():
            problems.append(f'the checkpoint has CUDA generator states of {len(cuda)} '
                            f'device(s), this process sees {torch.cuda.device_count()}')
        else:
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
    return problems


def _check_entry(entry: Any) -> Optional[str]:
    """Why ``checkpoint['rng_states']`` cannot be used (None when it can)."""
    if not isinstance(entry, dict) or not isinstance(entry.get('states'), (list, tuple)):
        return f"checkpoint['{CHECKPOINT_KEY}'] is not a dict with a 'states' list"
    for state in entry['states']:
        if not isinstance(state, dict) or not {'torch', 'numpy', 'python'} <= set(state):
            return (f"checkpoint['{CHECKPOINT_KEY}'] holds a per-rank entry without the "
                    'torch/numpy/python states')
    return None


class _RestoreBeforeFetch:
    """Wraps the train loop's data iterator: after ``skip`` batches (those an
    iteration-based loop skips on resume) it calls ``restore`` once, right
    before the next batch is fetched; otherwise it only passes batches on."""

    def __init__(self, iterator: Iterator, skip: int, restore: Callable[[], None]):
        self._wrapped = iterator
        self._skip = skip
        self._restore: Optional[Callable[[], None]] = restore

    def __iter__(self):
        return self

    def __next__(self):
        if self._restore is not None:
            if self._skip <= 0:
                restore, self._restore = self._restore, None
                restore()
            else:
                self._skip -= 1
        return next(self._wrapped)

    def __getattr__(self, name: str):
        wrapped = self.__dict__.get('_wrapped')
        if wrapped is None:
            raise AttributeError(name)
        return getattr(wrapped, name)


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save the RNG states of every rank with each checkpoint; restore them on
    resume, so a killed and resumed run equals an uninterrupted one.

    * Saving: every checkpoint written during training gets
      ``checkpoint['rng_states'] = dict(world_size=N, states=[rank 0, ...])``
      (see :func:`get_rng_state`). In a distributed run the states are
      gathered from all ranks (``all_gather_object``) right before a
      ``CheckpointHook`` saves (``after_train_iter`` / ``after_train_epoch``)
      and at the start of each validation (for best-checkpoint saves); a
      checkpoint saved at another point of a distributed run is written
      without states, with a warning.
    * Restoring (``resume=True`` only; a ``load_from`` checkpoint of
      iteration 0 of the new run is not a resume): each rank gets its own
      states back where they were taken. For ``IterBasedTrainLoop`` that is
      right before the first batch *after* the batches the loop skips on
      resume (the data transforms of the skipped batches draw random numbers
      too, and the loop fetches a batch before ``before_train_iter``);
      otherwise in ``before_train``. A checkpoint of another world size, or
      one without states, gives a one-line warning and nothing is restored.
    * Validation inside training leaves the generators as it found them
      (states taken in ``before_val``, put back in ``after_val``): a resumed
      run does not repeat the validation that ran before the checkpoint, so
      validation must not move the training's random numbers.

    The data workers of a DataLoader are seeded by MMEngine from the
    ``randomness`` seed, so exactness needs ``randomness=dict(seed=...)``.
    ``tools/train.py`` adds this hook to every config; with upstream tools add
    ``dict(type='RNGStateHook')`` to ``custom_hooks``.
    """

    # After the other hooks of an iteration, before CheckpointHook (VERY_LOW).
    priority = 'LOW'

    def __init__(self):
        self._pending: Optional[List[Dict[str, Any]]] = None   # gathered before a save
        self._val_local: Optional[Dict[str, Any]] = None       # this rank, before_val
        self._val_all: Optional[List[Dict[str, Any]]] = None   # all ranks, before_val
        self._resume_entry: Optional[Dict[str, Any]] = None
        self._resume_meta = None
        self._warned_unsaved = False

    # ------------------------------------------------------------ capturing
    @staticmethod
    def _gather() -> List[Dict[str, Any]]:
        local = get_rng_state()
        if get_world_size() > 1:
            return list(all_gather_object(local))
        return [local]

    @staticmethod
    def _checkpoint_due(runner, by_epoch: bool) -> bool:
        """Whether a CheckpointHook saves at the end of this iteration/epoch
        (evaluated identically on every rank)."""
        for hook in runner.hooks:
            if not isinstance(hook, CheckpointHook) or bool(hook.by_epoch) != by_epoch:
                continue
            try:
                if by_epoch:
                    due = (hook.every_n_epochs(runner, hook.interval, hook.save_begin)
                           or (hook.save_last and hook.is_last_train_epoch(runner)))
                else:
                    due = (hook.every_n_train_iters(runner, hook.interval, hook.save_begin)
                           or (hook.save_last and hook.is_last_train_iter(runner)))
            except AttributeError:  # an unusual CheckpointHook: gather to be safe
                due = True
            if due:
                return True
        return False

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._pending = None

    def before_train_epoch(self, runner) -> None:
        self._pending = None

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if get_world_size() > 1 and self._checkpoint_due(runner, by_epoch=False):
            self._pending = self._gather()

    def after_train_epoch(self, runner) -> None:
        if get_world_size() > 1 and self._checkpoint_due(runner, by_epoch=True):
            self._pending = self._gather()

    @staticmethod
    def _training(runner) -> bool:
        return isinstance(getattr(runner, '_train_loop', None), BaseLoop)

    def before_val(self, runner) -> None:
        if not self._training(runner):
            return
        self._val_all = self._gather()
        self._val_local = self._val_all[get_rank()]

    def after_val(self, runner) -> None:
        if self._val_local is not None:
            set_rng_state(self._val_local)
        self._val_local = self._val_all = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Put every rank's states into ``checkpoint['rng_states']``."""
        if self._val_all is not None:       # a best checkpoint saved during validation
            states = self._val_all
        elif self._pending is not None:
            states = self._pending
        elif get_world_size() == 1:
            states = self._gather()
        else:
            if not self._warned_unsaved:
                runner.logger.warning(
                    'RNGStateHook: a checkpoint is saved outside the points where the RNG '
                    'states of all ranks are gathered; it is written without RNG states '
                    '(resuming from it is not bit-exact)')
                self._warned_unsaved = True
            return
        checkpoint[CHECKPOINT_KEY] = dict(world_size=len(states), states=list(states))

    # ------------------------------------------------------------ restoring
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Keep the states of a loaded checkpoint until training starts."""
        self._resume_entry = checkpoint.get(CHECKPOINT_KEY)
        meta = checkpoint.get('meta') or {}
        self._resume_meta = (meta.get('iter'), meta.get('epoch'))

    def before_train(self, runner) -> None:
        """On resume, schedule (or do) the restore of this rank's states."""
        entry, meta = self._resume_entry, self._resume_meta
        self._resume_entry = self._resume_meta = None
        if meta is None or meta[0] is None or meta[0] == 0 \
                or meta != (runner.iter, runner.epoch):
            return  # nothing loaded, or load_from (not a resume)
        if entry is None:
            runner.logger.warning(
                'RNGStateHook: the resumed checkpoint holds no RNG states (written without '
                'RNGStateHook); the run continues with freshly seeded generators and is '
                'not bit-exact')
            return
        problem = _check_entry(entry)
        if problem is None and len(entry['states']) != get_world_size():
            problem = (f"the checkpoint's RNG states are of {len(entry['states'])} rank(s), "
                       f'this run has {get_world_size()}')
        if problem is not None:
            runner.logger.warning(f'RNGStateHook: {problem}; RNG states not restored (the '
                                  'resumed run is not bit-exact)')
            return
        state = entry['states'][get_rank()]

        def restore():
            for problem in set_rng_state(state):
                runner.logger.warning(f'RNGStateHook: {problem}; CUDA RNG states not '
                                      'restored')

        loop = runner.train_loop
        if runner.iter > 0 and hasattr(loop, 'dataloader_iterator'):
            # IterBasedTrainLoop skips runner.iter batches, then fetches the next one.
            loop.dataloader_iterator = _RestoreBeforeFetch(loop.dataloader_iterator,
                                                           runner.iter, restore)
            when = f'before batch {runner.iter + 1} is fetched'
        else:
            restore()
            when = 'before training'
        runner.logger.info(f'RNGStateHook: the RNG states of {get_world_size()} rank(s) '
                           f'are restored {when} (iteration {runner.iter})')
