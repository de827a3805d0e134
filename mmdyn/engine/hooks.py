"""MMEngine hooks of mmdyn.

:class:`TemperatureAnnealHook` anneals the attention temperature of every
mmdyn layer that has one (A2D2C, A2D2C+, ODConv, DynamicConv) with the
per-iteration linear schedule of the ODConv / DynamicConv papers::

    T(n) = end + max(0, (start - end) * (N - n) / N)

where ``n`` is the global training iteration (``runner.iter``; resuming from a
checkpoint therefore gives the same value as an uninterrupted run) and ``N``
is the length of the annealing phase in iterations.

The hook is registered in MMEngine's *root* ``HOOKS`` registry, so one class
serves ``default_scope='mmdet'`` and ``default_scope='mmpretrain'`` alike::

    custom_imports = dict(imports=['mmdyn.models'], allow_failed_imports=False)
    custom_hooks = [dict(type='TemperatureAnnealHook', start_temperature=30.0,
                         end_temperature=1.0, anneal_epochs=10)]
"""
from typing import List, Optional

import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner.base_loop import BaseLoop

from mmdyn.utils.validation import check_positive_int, check_positive_number
from mmdyn.utils.state_dict import unwrap_model


def find_hook_cfg(cfg, name: str) -> Optional[dict]:
    """The first entry of ``cfg.custom_hooks`` whose ``type`` is ``name`` (a
    registry name, possibly scoped like ``'mmdyn.X'``, or the class itself), or
    ``None``."""
    for hook in cfg.get('custom_hooks') or []:
        kind = hook.get('type') if isinstance(hook, dict) else None
        kind = kind if isinstance(kind, str) else getattr(kind, '__name__', str(kind))
        if kind.split('.')[-1] == name:
            return hook
    return None


def annealed_temperature(n: int, total: int, start: float, end: float) -> float:
    """Temperature of the linear schedule at iteration ``n``.

    Args:
        n: Global iteration (0-based, ``runner.iter``).
        total: Length ``N`` of the annealing phase in iterations (> 0).
        start: Temperature at ``n = 0``.
        end: Temperature for ``n >= N``.

    Returns:
        ``end + max(0, (start - end) * (N - n) / N)``.
    """
    if total <= 0:
        raise ValueError(f'the annealing length must be > 0 iterations, got {total}')
    return end + max(0.0, (start - end) * (total - n) / total)


def set_model_temperature(model: nn.Module, temperature: float) -> int:
    """Call ``set_temperature(temperature)`` on every submodule that has it.

    Model wrappers (DDP and the like) are unwrapped first.

    Args:
        model: The model, possibly wrapped.
        temperature: The value to set.

    Returns:
        How many modules were updated.
    """
    count = 0
    for module in unwrap_model(model).modules():
        setter = getattr(module, 'set_temperature', None)
        if callable(setter):
            setter(temperature)
            count += 1
    return count


def model_temperatures(model: nn.Module) -> List[float]:
    """The temperatures of every mmdyn layer of ``model`` (wrappers unwrapped),
    in module order."""
    return [m.temperature for m in unwrap_model(model).modules()
            if callable(getattr(m, 'set_temperature', None))]


def apply_legacy_temperature(model: nn.Module, temperature: float) -> int:
    """Set ``temperature`` on the layers whose last ``load_state_dict`` found no
    stored temperature (checkpoints written before mmdyn stored it).

    Returns:
        How many layers were set.
    """
    count = 0
    for module in unwrap_model(model).modules():
        if getattr(module, 'temperature_from_checkpoint', None) is False:
            module.set_temperature(temperature)
            module.__dict__['temperature_from_checkpoint'] = False  # still a legacy value
            count += 1
    return count


_OWNER = 'TemperatureAnnealHook'  # the prefix of its argument errors


@HOOKS.register_module()
class TemperatureAnnealHook(Hook):
    """Linearly anneal the attention temperature of mmdyn layers.

    Before every training iteration ``n`` (``runner.iter``) every submodule
    with a ``set_temperature`` method gets
    ``T = end + max(0, (start - end) * (N - n) / N)``. The value is also set
    in ``before_train`` (so the first forward after a resume already uses the
    resumed value) and, inside a training run, in ``before_val`` with the value
    of the current iteration. The temperature is part of every layer's state
    dict, so a checkpoint carries it: a stand-alone validation/test run (no
    training loop built, e.g. ``tools/test.py``, ``Runner.from_cfg().test()``)
    keeps the temperature the checkpoint holds, exactly what mmdet's
    ``init_detector`` or mmpretrain's inferencers use. Only layers loaded from
    a checkpoint written before mmdyn stored the temperature (they warn) get
    ``end_temperature`` there, as earlier versions of this hook did. The
    current value is logged as ``train/temperature`` through the message hub.

    Args:
        start_temperature: Temperature at iteration 0. Default: 30.0.
        end_temperature: Temperature from iteration ``N`` on. Default: 1.0.
        anneal_epochs: Length of the annealing phase in epochs; ``N`` is
            ``anneal_epochs * len(train_dataloader)``. Used when
            ``anneal_iters`` is None. Default: 10.
        by_epoch: Measure the annealing length in epochs (needs a train
            dataloader with a length). ``False`` requires ``anneal_iters``.
            Default: True.
        anneal_iters: Length of the annealing phase in iterations; when
            given it takes precedence over ``anneal_epochs``/``by_epoch``
            (use it with ``IterBasedTrainLoop``). Default: None.

    Raises:
        ValueError / TypeError: A temperature is not a finite number > 0,
            ``start_temperature < end_temperature``, or the annealing length
            is not a positive int.
    """

    priority = 'NORMAL'

    def __init__(self, start_temperature: float = 30.0, end_temperature: float = 1.0,
                 anneal_epochs: int = 10, by_epoch: bool = True,
                 anneal_iters: Optional[int] = None):
        self.start_temperature = check_positive_number('start_temperature', start_temperature,
                                                       owner=_OWNER)
        self.end_temperature = check_positive_number('end_temperature', end_temperature,
                                                     owner=_OWNER)
        if self.start_temperature < self.end_temperature:
            raise ValueError(
                'TemperatureAnnealHook: start_temperature must be >= end_temperature '
                f'(the temperature is annealed downwards), got start={start_temperature}, '
                f'end={end_temperature}')
        if anneal_iters is not None:
            self.anneal_iters: Optional[int] = check_positive_int('anneal_iters', anneal_iters,
                                                                  owner=_OWNER)
        else:
            self.anneal_iters = None
            if not by_epoch:
                raise ValueError('TemperatureAnnealHook: by_epoch=False needs anneal_iters '
                                 '(the annealing length in iterations)')
        self.anneal_epochs = check_positive_int('anneal_epochs', anneal_epochs, owner=_OWNER)
        self.by_epoch = bool(by_epoch) and anneal_iters is None
        self._total_iters: Optional[int] = None
        self._warned_no_layers = False
        self.current_temperature: Optional[float] = None

    # ----------------------------------------------------------------- schedule
    def total_iters(self, runner) -> int:
        """The annealing length ``N`` in iterations for ``runner``.

        Raises:
            TypeError: ``by_epoch`` is set but the train dataloader has no length.
        """
        if self.anneal_iters is not None:
            return self.anneal_iters
        if self._total_iters is None:
            dataloader = runner.train_dataloader
            try:
                iters_per_epoch = len(dataloader)
            except TypeError:
                raise TypeError(
                    'TemperatureAnnealHook(by_epoch=True) needs the length of the train '
                    f'dataloader to convert anneal_epochs={self.anneal_epochs} into '
                    f'iterations, but {type(dataloader).__name__} has no len(); pass '
                    'anneal_iters instead') from None
            if iters_per_epoch <= 0:
                raise ValueError('TemperatureAnnealHook: the train dataloader is empty, '
                                 'cannot derive the annealing length from anneal_epochs')
            self._total_iters = self.anneal_epochs * iters_per_epoch
        return self._total_iters

    def temperature_at(self, runner, n: int) -> float:
        """Temperature for global iteration ``n`` of ``runner``."""
        return annealed_temperature(n, self.total_iters(runner), self.start_temperature,
                                    self.end_temperature)

    def _apply(self, runner, temperature: float) -> None:
        count = set_model_temperature(runner.model, temperature)
        if count == 0 and not self._warned_no_layers:
            runner.logger.warning('TemperatureAnnealHook: the model has no module with '
                                  'set_temperature(); the hook does nothing')
            self._warned_no_layers = True
        self.current_temperature = temperature
        runner.message_hub.update_scalar('train/temperature', temperature)

    @staticmethod
    def _training(runner) -> bool:
        """True when the runner's training loop has been built (training run)."""
        return isinstance(getattr(runner, '_train_loop', None), BaseLoop)

    # -------------------------------------------------------------------- hooks
    def before_train(self, runner) -> None:
        """Set the temperature of the (possibly resumed) current iteration."""
        self._total_iters = None  # the dataloader may differ between runs
        self._apply(runner, self.temperature_at(runner, runner.iter))

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        """Set the temperature of iteration ``runner.iter`` before its forward."""
        self._apply(runner, self.temperature_at(runner, runner.iter))

    def _before_eval(self, runner) -> None:
        if self._training(runner):
            self._apply(runner, self.temperature_at(runner, runner.iter))
            return
        count = apply_legacy_temperature(runner.model, self.end_temperature)
        if count:
            runner.logger.warning(
                f'TemperatureAnnealHook: {count} layer(s) were loaded from a checkpoint '
                f'without a stored temperature; evaluating them with end_temperature='
                f'{self.end_temperature:g}')
        temperatures = model_temperatures(runner.model)
        if temperatures:
            self.current_temperature = temperatures[0]
            runner.message_hub.update_scalar('train/temperature', temperatures[0])

    def before_val(self, runner) -> None:
        """Inside training: the current iteration's value. Stand-alone: keep the
        checkpoint's temperature (see the class docstring)."""
        self._before_eval(runner)

    def before_test(self, runner) -> None:
        """Inside training: the current iteration's value. Stand-alone: keep the
        checkpoint's temperature (see the class docstring)."""
        self._before_eval(runner)


@HOOKS.register_module()
class ProgressBarHook(Hook):
    """A terminal progress bar over the training iterations (tqdm, stderr).

    Shows ``iteration/max_iters``, the ETA and the latest loss; starts at
    ``runner.iter`` so a resumed run continues the bar. Logging is unchanged.

    Args:
        loss_key: Message-hub scalar shown beside the bar. Default: 'train/loss'.
    """

    priority = 'VERY_LOW'

    def __init__(self, loss_key: str = 'train/loss'):
        self.loss_key = loss_key
        self.bar = None

    def before_train(self, runner) -> None:
        from tqdm import tqdm
        self.bar = tqdm(total=runner.max_iters, initial=runner.iter, desc='train',
                        unit='it', dynamic_ncols=True)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if self.bar is None:
            return
        scalars = runner.message_hub.log_scalars
        if self.loss_key in scalars:
            self.bar.set_postfix(loss=f'{scalars[self.loss_key].current():.3f}',
                                 refresh=False)
        self.bar.update(1)

    def after_train(self, runner) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@HOOKS.register_module()
class ClassCountsHook(Hook):
    """Give class-balanced losses the class counts of the training set.

    Before training, every submodule with a ``set_class_counts`` method (e.g.
    :class:`~mmdyn.models.losses.AdaptiveLoss`) receives ``n_c``, the number
    of samples of each class in ``runner.train_dataloader.dataset`` (dataset
    wrappers are unwrapped; the labels come from ``get_gt_labels()``). The
    number of classes is the dataset's ``metainfo['classes']`` length (or the
    largest label + 1). The losses store the derived weights in a buffer, so
    a checkpoint carries them to ``tools/test.py``.

    Args:
        override (bool): Also replace counts a loss already has (from the
            config or a resumed checkpoint). Default: False.

    Raises:
        RuntimeError: The hook is in a config without a class-balanced loss,
            or the dataset has no labels to count.
    """

    priority = 'NORMAL'

    def __init__(self, override: bool = False):
        if not isinstance(override, bool):
            raise TypeError(f'ClassCountsHook: override must be a bool, got {override!r}')
        self.override = override

    def before_train(self, runner) -> None:
        from mmdyn.datasets import class_counts
        model = unwrap_model(runner.model)
        losses = [m for m in model.modules() if hasattr(m, 'set_class_counts')]
        if not losses:
            raise RuntimeError('ClassCountsHook: the model has no loss with set_class_counts '
                               "(e.g. loss=dict(type='AdaptiveLoss')); remove the hook")
        dataset = runner.train_dataloader.dataset
        num_classes = getattr(getattr(model, 'head', None), 'num_classes', None)
        has_names = (getattr(dataset, 'metainfo', None) or {}).get('classes') is not None
        counts = class_counts(dataset, None if has_names else num_classes)
        if num_classes is not None and num_classes != len(counts):
            raise RuntimeError(f'ClassCountsHook: the training set has {len(counts)} classes '
                               f'but the head predicts num_classes={num_classes}')
        updated = 0
        for loss in losses:
            if self.override or not getattr(loss, 'has_class_counts', False):
                loss.set_class_counts(counts)
                updated += 1
        runner.logger.info(f'ClassCountsHook: {len(counts)} classes, counts min/max '
                           f'{min(counts)}/{max(counts)}, set on {updated} loss module(s)')
